"""``sample`` through core engines, resuming; and sample -> mine -> hsdpo on a handful of records."""

from __future__ import annotations

import itertools

import pytest
from _training_helpers import case_records, cpu_args
from guardreasoner.engines import create_engine
from guardreasoner.engines.base import Engine, Generation, GenerationConfig
from guardreasoner.errors import EngineError
from guardreasoner.testing import guard_output
from guardreasoner_training.hsdpo import HSDPOConfig, train_hsdpo
from guardreasoner_training.mining import SampleSet, mine_pairs
from guardreasoner_training.records import read_rows
from guardreasoner_training.sampling import SamplingConfig, sample_records


class AlternatingEngine(Engine):
    """Answers each prompt's samples with alternating request labels, so every prompt is a hard one."""

    name = "alternating"

    def __init__(self):
        self.configs: list[GenerationConfig] = []
        self.prompts: list[str] = []

    def generate(self, prompts, config):
        self.configs.append(config)
        self.prompts.extend(prompts)
        labels = itertools.cycle(["harmful", "unharmful", "harmful"])
        out = []
        for _ in prompts:
            samples = tuple(guard_output(next(labels), reasoning="x" * k) for k in range(config.n))
            out.append(Generation(text=samples[0], finish_reason="stop", samples=samples))
        return out


def test_sample_with_the_hf_engine_and_resume(small_llama_dir, tmp_path):
    records = case_records()
    out = tmp_path / "samples.jsonl"
    engine = create_engine("hf", str(small_llama_dir))
    config = SamplingConfig(k=2, max_new_tokens=6, batch_size=3, seed=0)
    assert sample_records(engine, records[:3], out, config, model_name="tiny") == 3
    rows = read_rows(out)
    assert [row["id"] for row in rows] == [r.id for r in records[:3]]
    assert all(len(row["samples"]) == 2 and row["model"] == "tiny" for row in rows)
    assert rows[0]["output"] == records[0].output and rows[0]["instruction"] == records[0].instruction
    # a rerun samples only what is missing
    assert sample_records(engine, records, out, config) == 2
    assert [row["id"] for row in read_rows(out)] == [r.id for r in records]


def test_sample_uses_the_paper_settings_and_the_training_prompts(tmp_path):
    engine = AlternatingEngine()
    records = case_records()
    sample_records(engine, records, tmp_path / "s.jsonl")
    config = engine.configs[0]
    assert (config.n, config.temperature, config.top_p, config.max_new_tokens) == (4, 0.7, 0.95, 2048)
    assert engine.prompts == [r.instruction + "\n" + r.input for r in records]


def test_an_engine_that_ignores_n_is_caught(tmp_path):
    class OneSample(AlternatingEngine):
        def generate(self, prompts, config):
            return [Generation(text="x", finish_reason="stop", samples=("x",)) for _ in prompts]

    with pytest.raises(EngineError, match="returned 1 samples"):
        sample_records(OneSample(), case_records(), tmp_path / "s.jsonl", SamplingConfig(k=4))


def test_sample_mine_hsdpo(small_llama_dir, tmp_path):
    samples = tmp_path / "samples.jsonl"
    sample_records(AlternatingEngine(), case_records(), samples)
    pairs = mine_pairs(SampleSet.from_row(row, str(samples)) for row in read_rows(samples))
    assert len(pairs) == 5 and all(p["task"] == "request" for p in pairs)
    config = HSDPOConfig(**cpu_args(tmp_path / "dpo"), per_device_train_batch_size=5, max_steps=1)
    saved = train_hsdpo(pairs, str(small_llama_dir), config)
    assert (saved / "model.safetensors").is_file() and (saved / "guardreasoner.json").is_file()
