"""The CLI lists and runs the stages; LoRA, presets and the padding-free attention wiring."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from _training_helpers import case_records, cpu_args
from guardreasoner.engines import create_engine
from guardreasoner.engines.base import GenerationConfig
from guardreasoner.testing import guard_output
from guardreasoner_training import attention
from guardreasoner_training.cli import app
from guardreasoner_training.presets import accumulation_steps, batch_layout, get_preset
from guardreasoner_training.rsft import RSFTConfig, train_rsft, truncate_dataset
from typer.testing import CliRunner

STAGES = ("synthesize", "prepare", "rsft", "sample", "mine", "hsdpo")


def train_cli(*args, env=None):
    """``guardreasoner-train`` as a user runs it: a subprocess, a narrow terminal."""
    environment = {**os.environ, "COLUMNS": "60", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "guardreasoner_training", *map(str, args)],
        capture_output=True, text=True, timeout=300, env=environment,
    )  # fmt: skip


def error_line(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return line


def test_help_lists_the_stages_without_loading_torch():
    """``--help`` imports none of torch, transformers, trl or peft (it took seconds when it did)."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['guardreasoner-train', '--help']\n"
        "try:\n    runpy.run_module('guardreasoner_training', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        "print('heavy:', sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout
    for stage in STAGES:
        assert stage in result.stdout


def test_stage_flags_come_from_the_config_dataclasses():
    """Defaults and help of the derived flags are the configs' own (changing a config default changes the flag)."""
    from guardreasoner_training.hsdpo import HSDPOConfig

    rsft_help = " ".join(CliRunner().invoke(app, ["rsft", "--help"], env={"COLUMNS": "300"}).output.split())
    hsdpo_help = " ".join(CliRunner().invoke(app, ["hsdpo", "--help"], env={"COLUMNS": "300"}).output.split())
    for config, text in ((RSFTConfig, rsft_help), (HSDPOConfig, hsdpo_help)):
        fields = {f.name: f for f in config.__dataclass_fields__.values()}
        for name in ("learning_rate", "num_train_epochs", "lr_scheduler_type", "lora_r"):
            flag = "--" + name.replace("_", "-")
            assert flag in text and fields[name].metadata["help"] in text, (config.__name__, name)
            assert f"[default: {fields[name].default}]" in text, (config.__name__, name)
    assert "--epochs" in rsft_help and "--cutoff-len" in rsft_help and "--lora / --no-use-lora" in rsft_help
    assert "--cutoff-len" in hsdpo_help and "--beta" in hsdpo_help
    assert "the paper's batch layout for that size (--model is the model)" in hsdpo_help
    assert "base model" not in hsdpo_help.split("--preset", 1)[1].split("--per-device-batch", 1)[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--preset", "9b"), "Unknown preset '9b'; choose one of 1b, 3b, 8b."),
        (("--arg", "max_steps"), "--arg 'max_steps': give key=value"),
        (("--prompt-format", "xml"), "--prompt-format 'xml' is not a format; choose one of raw, chat."),
    ],
)
def test_training_option_errors_are_one_line(tmp_path, args, message):
    """Each is reported before anything is loaded (the model directory here is empty)."""
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r.as_row()) + "\n" for r in case_records()))
    result = train_cli("rsft", data, "-o", tmp_path / "out", "--model", tmp_path, *args)
    assert result.returncode == 2
    assert message in error_line(result)


def test_offline_default_preset_fails_fast_with_the_model_dir_hint(tmp_path):
    """HF_HUB_OFFLINE and an empty cache: the preset's hub model is reported before anything loads."""
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r.as_row()) + "\n" for r in case_records()))
    result = train_cli(
        "rsft", data, "-o", tmp_path / "out", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    )
    assert result.returncode == 2
    line = error_line(result)
    assert "'meta-llama/Llama-3.2-1B'" in line and "HF_HUB_OFFLINE is set" in line
    assert "hf download meta-llama/Llama-3.2-1B --local-dir DIR" in line and "--model DIR" in line


def test_examples_over_the_cutoff_are_counted_when_dropped(caplog):
    from datasets import Dataset

    rows = [
        {"input_ids": list(range(10)), "labels": [-100] * 6 + [1, 2, 3, 4]},  # answer starts at token 6
        {"input_ids": list(range(10)), "labels": [-100] * 3 + [1] * 7},  # answer starts at token 3
        {"input_ids": list(range(4)), "labels": [-100, 5, 6, 7]},
    ]
    with caplog.at_level("WARNING", logger="guardreasoner_training"):
        kept = truncate_dataset(Dataset.from_list(rows), 5)
    assert len(kept) == 2 and [len(r) for r in kept["input_ids"]] == [5, 4]
    assert "Left out 1 of 3 R-SFT train examples: their prompt alone takes cutoff_len=5 tokens" in caplog.text


def test_prepare_rsft_mine_hsdpo_through_the_cli(small_llama_dir, tmp_path):
    runner = CliRunner()
    source = tmp_path / "records.json"
    source.write_text(json.dumps([r.as_row() for r in case_records()]))
    result = runner.invoke(app, ["prepare", str(source), "-o", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "train 5" in result.output

    cpu = ["--arg", "use_cpu=true", "--arg", "max_steps=2", "--arg", "save_strategy=no"]
    result = runner.invoke(app, [
        "rsft", str(tmp_path / "data" / "train.jsonl"), "-o", str(tmp_path / "rsft"), "--model", str(small_llama_dir),
        "--per-device-batch", "5", "--grad-accum", "1", "--prompt-format", "chat", "--chat-template", "tokenizer",
        "--no-gradient-checkpointing", *cpu,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "bf16 off: this machine has no CUDA device that supports it" in result.output  # no CUDA in CI
    assert json.loads((tmp_path / "rsft" / "guardreasoner.json").read_text())["prompt_format"] == "chat"

    samples = tmp_path / "samples.jsonl"
    rows = []
    for record in case_records():
        wrong = "unharmful" if record.labels().request == "harmful" else "harmful"
        rows.append(
            record.as_row()
            | {"samples": [record.output, guard_output(wrong), record.output, guard_output(wrong)]}
        )
    samples.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = runner.invoke(app, ["mine", str(samples), str(samples), "-o", str(tmp_path / "pairs.jsonl")])
    assert result.exit_code == 0, result.output
    assert "5 pairs" in result.output  # the second file's pairs repeat the first's inputs

    result = runner.invoke(app, [
        "hsdpo", str(tmp_path / "pairs.jsonl"), "--model", str(tmp_path / "rsft"), "-o", str(tmp_path / "dpo"),
        "--per-device-batch", "5", "--grad-accum", "1", "--no-gradient-checkpointing", *cpu,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "dpo" / "guardreasoner.json").read_text())
    assert (card["prompt_format"], card["stage"]) == ("chat", "hsdpo")  # the format follows the R-SFT model


def test_cli_errors_are_one_clear_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "x", "input": "y"}]))
    result = CliRunner().invoke(app, ["prepare", str(bad), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "record 0 has no output" in result.output


def test_lora_trains_and_saves_a_merged_model_the_core_loads(small_llama_dir, tmp_path):
    config = RSFTConfig(
        **cpu_args(tmp_path), max_steps=2, per_device_train_batch_size=5, use_lora=True, lora_r=4
    )
    saved = train_rsft(case_records(), str(small_llama_dir), config)
    assert (saved / "model.safetensors").is_file() and not (saved / "adapter_config.json").exists()
    assert json.loads((saved / "guardreasoner.json").read_text())["lora"] is True
    engine = create_engine("hf", str(saved))
    (generation,) = engine.generate([case_records()[0].prompt], GenerationConfig(max_new_tokens=4))
    assert generation.num_generated_tokens >= 1


def test_presets_keep_the_paper_batches(monkeypatch):
    assert get_preset("8B").base_model == "meta-llama/Llama-3.1-8B"
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert batch_layout("3b", "rsft") == {
        "per_device_train_batch_size": 6, "gradient_accumulation_steps": 32, "activation_checkpointing": True,
    }  # fmt: skip
    assert batch_layout("1b", "hsdpo", per_device_batch=4, gradient_checkpointing=False) == {
        "per_device_train_batch_size": 4, "gradient_accumulation_steps": 32, "activation_checkpointing": False,
    }  # fmt: skip
    assert accumulation_steps(384, 6, 4) == 16  # the reference: 4 GPUs x 6 x 16
    assert accumulation_steps(256, 1, 4) == 64
    assert accumulation_steps(384, 32, 1) == 12
    with pytest.raises(ValueError, match="not a multiple"):
        accumulation_steps(384, 5, 1)


def test_varlen_attention_matches_per_sequence_attention(monkeypatch):
    """The padding-free wiring, with the CUDA kernel replaced by per-sequence SDPA (the kernel is checked on the GPU)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    def per_sequence(q, k, v, cu_seq, max_len, scale):
        out = []
        for start, end in zip(cu_seq[:-1].tolist(), cu_seq[1:].tolist(), strict=True):
            groups = q.shape[1] // k.shape[1]
            qs, ks, vs = (t[start:end].transpose(0, 1).float() for t in (q, k, v))
            ks, vs = ks.repeat_interleave(groups, 0), vs.repeat_interleave(groups, 0)
            out.append(
                torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale)
            )
        return torch.cat([o.transpose(0, 1) for o in out]).to(q.dtype)

    monkeypatch.setattr(attention, "_varlen_kernel", per_sequence)
    name = attention.register_varlen_attention()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    lengths = [5, 9, 3]
    sequences = [torch.randint(0, 64, (n,)) for n in lengths]
    cu = torch.tensor([0, 5, 14, 17], dtype=torch.int32)
    packed = dict(
        input_ids=torch.cat(sequences)[None],
        position_ids=torch.cat([torch.arange(n) for n in lengths])[None],
        cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=9, max_length_k=9,
    )  # fmt: skip
    model.set_attn_implementation(name)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        got = model(**packed).logits.float()[0]
        # a batch without sequence boundaries falls back to SDPA
        fallback = model(input_ids=sequences[1][None]).logits.float()[0]
    model.set_attn_implementation("sdpa")
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        want = torch.cat([model(input_ids=s[None]).logits.float()[0] for s in sequences])
    torch.testing.assert_close(got, want, rtol=0, atol=2e-2)
    torch.testing.assert_close(fallback, want[5:14], rtol=0, atol=2e-2)
    with pytest.raises(ValueError, match="bf16 or fp16"), torch.no_grad():
        model.set_attn_implementation(name)
        model(**packed)
