"""The CLI lists and runs the stages; LoRA, presets and the padding-free attention wiring."""

from __future__ import annotations

import json

import pytest
import torch
from _training_helpers import case_records, cpu_args
from guardreasoner.engines import create_engine
from guardreasoner.engines.base import GenerationConfig
from guardreasoner.testing import guard_output
from guardreasoner_training import attention
from guardreasoner_training.cli import app
from guardreasoner_training.presets import accumulation_steps, get_preset
from guardreasoner_training.rsft import RSFTConfig, train_rsft
from typer.testing import CliRunner

STAGES = ("synthesize", "prepare", "rsft", "sample", "mine", "hsdpo")


def test_help_lists_the_stages():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for stage in STAGES:
        assert stage in result.output


def test_prepare_rsft_mine_hsdpo_through_the_cli(small_llama_dir, tmp_path):
    runner = CliRunner()
    source = tmp_path / "records.json"
    source.write_text(json.dumps([r.as_row() for r in case_records()]))
    result = runner.invoke(app, ["prepare", str(source), "-o", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "train 5" in result.output

    cpu = ["--arg", "use_cpu=true", "--arg", "max_steps=2", "--arg", "save_strategy=no", "--no-bf16"]
    result = runner.invoke(app, [
        "rsft", str(tmp_path / "data" / "train.jsonl"), "-o", str(tmp_path / "rsft"), "--model", str(small_llama_dir),
        "--per-device-batch", "5", "--grad-accum", "1", "--prompt-format", "chat", "--chat-template", "tokenizer",
        "--no-gradient-checkpointing", *cpu,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
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


def test_presets_keep_the_paper_batches():
    assert get_preset("8B").base_model == "meta-llama/Llama-3.1-8B"
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
