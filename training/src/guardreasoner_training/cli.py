"""The ``guardreasoner-train`` command line: one subcommand per stage, each reading and writing plain files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from guardreasoner_training.progress import console, progress_bar

app = typer.Typer(
    name="guardreasoner-train",
    help=(
        "Train GuardReasoner guards on your own data. Stages: synthesize -> prepare -> rsft -> sample -> mine "
        "-> hsdpo; each reads and writes plain files, so you can stop, inspect and resume between them."
    ),
    no_args_is_help=True,
    add_completion=False,
)

Format = Annotated[
    str, typer.Option("--prompt-format", help="raw (plain text, as the released models run) or chat.")
]
ChatTemplate = Annotated[
    str, typer.Option(help="For chat: llama3 (LLaMA-Factory's, the paper's), tokenizer, or a Jinja file.")
]
Preset = Annotated[str, typer.Option(help="1b, 3b or 8b: base model and the paper's batch layout.")]
Checkpointing = Annotated[
    bool | None,
    typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Recompute activations to save memory (default: the preset's, on).",
    ),
]
ExtraArgs = Annotated[
    list[str] | None,
    typer.Option("--arg", help="Any other trl/transformers training argument, as key=value (repeatable)."),
]
OutputDir = Annotated[Path, typer.Option("--output-dir", "-o", help="Where the model and checkpoints go.")]
Lora = Annotated[bool, typer.Option(help="Train a LoRA adapter (merged into the saved model).")]
LoraRank = Annotated[int, typer.Option(help="LoRA rank.")]
Liger = Annotated[bool, typer.Option(help="Liger's fused RMSNorm/SwiGLU/RoPE kernels (CUDA).")]
Bf16 = Annotated[bool, typer.Option(help="bf16 mixed precision (fp32 master weights).")]
Resume = Annotated[bool, typer.Option(help="Resume from the last checkpoint in --output-dir.")]


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
    raise typer.Exit(2) from exc


def _errors() -> tuple[type[Exception], ...]:
    from guardreasoner.errors import GuardReasonerError

    return (GuardReasonerError, ValueError, OSError)


@contextmanager
def _reported_errors() -> Iterator[None]:
    """What every stage does with a user-facing error: one red line and exit status 2, no traceback."""
    try:
        yield
    except _errors() as exc:
        _fail(exc)


@app.callback()
def _root() -> None:
    """Train GuardReasoner guards on your own data."""


# ---------------------------------------------------------------------------------------------------------------


@app.command()
def synthesize(
    input: Annotated[
        Path, typer.Argument(help="Labelled conversations (.json/.jsonl): prompt, response, labels.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where kept traces are appended (JSONL).")],
    teacher_model: Annotated[str, typer.Option(help="The teacher's model name.")] = "gpt-4o-2024-08-06",
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible API base URL (default: OpenAI).")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (default: $OPENAI_API_KEY).")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight.")] = 16,
    max_attempts: Annotated[int, typer.Option(help="Attempts per record on transient errors.")] = 5,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 120.0,
    temperature: Annotated[float, typer.Option(help="Teacher sampling temperature.")] = 0.0,
    max_tokens: Annotated[int, typer.Option(help="Teacher answer length limit.")] = 2048,
) -> None:
    """Reasoning traces from a teacher (gold labels in its instruction); keeps those whose answers match the labels."""
    from guardreasoner_training.records import read_rows, to_labelled_examples
    from guardreasoner_training.synthesize import TeacherConfig, rejected_path
    from guardreasoner_training.synthesize import synthesize as run

    with _reported_errors():
        examples = to_labelled_examples(read_rows(input), where=str(input))
        config = TeacherConfig(
            model=teacher_model,
            base_url=base_url,
            api_key=api_key,
            concurrency=concurrency,
            max_attempts=max_attempts,
            timeout_s=timeout,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        with progress_bar() as progress:
            task = progress.add_task("Synthesizing", total=len(examples), info="")
            counts = {"kept": 0, "rejected": 0, "failed": 0}

            def done(outcome: str) -> None:
                counts[outcome] += 1
                progress.update(task, advance=1, info=" ".join(f"{k} {v}" for k, v in counts.items()))

            stats = asyncio.run(run(examples, output, config, on_done=done))
    console.print(
        f"kept {stats.kept}, rejected {stats.rejected} (answers differ from the labels; see "
        f"{rejected_path(output)}), failed {stats.failed}, already done {stats.skipped}, retries {stats.retries}"
    )
    if stats.failed:
        console.print("Run the same command again to retry the failed records.")


@app.command()
def prepare(
    inputs: Annotated[
        list[str], typer.Argument(help="GuardReasonerTrain-format .json/.jsonl files or a hub dataset id.")
    ],
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Where train.jsonl and prepare.json go.")
    ],
    split: Annotated[
        str | None, typer.Option(help="Hub dataset splits to read (comma-separated; default all).")
    ] = None,
    max_samples: Annotated[int | None, typer.Option(help="Keep the first N records of each input.")] = None,
    drop_unreadable: Annotated[
        bool, typer.Option(help="Leave out records whose labels cannot be read.")
    ] = False,
    eval_fraction: Annotated[float, typer.Option(help="Hold out this fraction as eval.jsonl.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the eval split.")] = 0,
) -> None:
    """Check GuardReasonerTrain-format records (instruction, input, output) and write a training set."""
    from guardreasoner_training.prepare import prepare as run

    with _reported_errors():
        report = run(
            inputs,
            output_dir,
            split=split,
            max_samples=max_samples,
            drop_unreadable=drop_unreadable,
            eval_fraction=eval_fraction,
            seed=seed,
        )
    console.print(
        f"train {report.train}, eval {report.eval}, duplicates {report.duplicates}, "
        f"dropped {report.dropped_unreadable} -> {output_dir / 'train.jsonl'}"
    )
    console.print(f"request labels: {report.labels.get('request')}")


# ---------------------------------------------------------------------------------------------------------------


def _stage_config(
    config_class: type,
    *,
    stage: str,
    output_dir: Path,
    preset: str,
    per_device_batch: int | None,
    grad_accum: int | None,
    extra: list[str] | None,
    gradient_checkpointing: bool | None,
    **fields: Any,
) -> Any:
    """A training stage's config (rsft, hsdpo): its own ``fields``, the preset's batch layout, the ``--arg`` extras."""
    from guardreasoner_training.presets import (
        HSDPO_EFFECTIVE_BATCH,
        RSFT_EFFECTIVE_BATCH,
        accumulation_steps,
        get_preset,
        world_size,
    )

    chosen = get_preset(preset)
    default_batch = chosen.rsft_per_device_batch if stage == "rsft" else chosen.hsdpo_per_device_batch
    effective = RSFT_EFFECTIVE_BATCH if stage == "rsft" else HSDPO_EFFECTIVE_BATCH
    batch = per_device_batch or default_batch
    accum = grad_accum or accumulation_steps(effective, batch, world_size())
    kwargs: dict[str, Any] = {
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": accum,
        "gradient_checkpointing": chosen.gradient_checkpointing
        if gradient_checkpointing is None
        else gradient_checkpointing,
    }
    for item in extra or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--arg takes key=value, got '{item}'.")
        kwargs[key.strip()] = _parse_value(value)
    return config_class(output_dir=str(output_dir), **fields, disable_tqdm=True, report_to=[], **kwargs)


def _parse_value(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _chat_template(value: str) -> str:
    path = Path(value)
    return (
        path.read_text(encoding="utf-8") if value not in ("llama3", "tokenizer") and path.is_file() else value
    )


@app.command()
def rsft(
    data: Annotated[Path, typer.Argument(help="The prepared training set (train.jsonl).")],
    output_dir: OutputDir,
    model: Annotated[
        str | None, typer.Option(help="Base model (hub id or directory; default: the preset's).")
    ] = None,
    preset: Preset = "1b",
    prompt_format: Format = "raw",
    chat_template: ChatTemplate = "llama3",
    eval_data: Annotated[Path | None, typer.Option(help="Optional eval set (eval.jsonl).")] = None,
    epochs: Annotated[float, typer.Option(help="Epochs (paper: 3).")] = 3.0,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate (paper: 5e-5).")] = 5e-5,
    cutoff_len: Annotated[
        int, typer.Option(help="Tokens per example, prompt + answer (paper: 2048).")
    ] = 2048,
    per_device_batch: Annotated[int | None, typer.Option(help="Sequences per device and step.")] = None,
    grad_accum: Annotated[
        int | None, typer.Option(help="Accumulation (default: reach the paper's 384).")
    ] = None,
    lora: Lora = False,
    lora_r: LoraRank = 16,
    padding_free: Annotated[
        bool, typer.Option(help="Concatenate each batch into one row (no padding).")
    ] = False,
    attn: Annotated[str | None, typer.Option(help="sdpa, flex_attention or guardreasoner_varlen.")] = None,
    liger: Liger = False,
    compile_layers: Annotated[
        bool, typer.Option("--compile", help="torch.compile each decoder layer.")
    ] = False,
    bf16: Bf16 = True,
    resume: Resume = False,
    gradient_checkpointing: Checkpointing = None,
    extra: ExtraArgs = None,
) -> None:
    """Reasoning SFT: full fine-tuning (or LoRA) with the loss on the answer only."""
    from guardreasoner_training.prepare import load_training_records
    from guardreasoner_training.presets import get_preset
    from guardreasoner_training.progress import RichProgressCallback
    from guardreasoner_training.rsft import RSFTConfig, train_rsft

    with _reported_errors():
        config = _stage_config(
            RSFTConfig,
            stage="rsft",
            output_dir=output_dir,
            preset=preset,
            per_device_batch=per_device_batch,
            grad_accum=grad_accum,
            extra=extra,
            gradient_checkpointing=gradient_checkpointing,
            num_train_epochs=epochs,
            learning_rate=learning_rate,
            cutoff_len=cutoff_len,
            prompt_format=prompt_format,
            chat_template=_chat_template(chat_template),
            use_lora=lora,
            lora_r=lora_r,
            padding_free=padding_free,
            attn_implementation=attn,
            liger_kernels=liger,
            compile_layers=compile_layers,
            bf16=bf16,
        )
        records = load_training_records(data)
        evaluation = load_training_records(eval_data) if eval_data else None
        base = model or get_preset(preset).base_model
        saved = train_rsft(
            records,
            base,
            config,
            eval_records=evaluation,
            resume=resume,
            callbacks=[RichProgressCallback("R-SFT")],
        )
    console.print(
        f"R-SFT model saved to {saved} (prompt format {prompt_format}, recorded in guardreasoner.json)"
    )


@app.command()
def sample(
    data: Annotated[Path, typer.Argument(help="The training set to sample on (train.jsonl).")],
    model: Annotated[str, typer.Option(help="The R-SFT model directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where samples are appended (JSONL).")],
    engine: Annotated[str, typer.Option(help="auto (vLLM when present), hf, vllm or openai.")] = "auto",
    k: Annotated[int, typer.Option(help="Samples per prompt (paper: 4).")] = 4,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (paper: 0.7).")] = 0.7,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling (paper: 0.95).")] = 0.95,
    max_new_tokens: Annotated[int, typer.Option(help="Output length limit (paper: 2048).")] = 2048,
    batch_size: Annotated[int, typer.Option(help="Prompts per engine call (and per write).")] = 64,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    base_url: Annotated[str | None, typer.Option(help="For --engine openai: the server's /v1 URL.")] = None,
) -> None:
    """k samples per training prompt from the R-SFT model (resumes an interrupted run)."""
    from guardreasoner.engines import create_engine

    from guardreasoner_training.prepare import load_training_records
    from guardreasoner_training.sampling import SamplingConfig, done_ids, sample_records

    with _reported_errors():
        records = load_training_records(data)
        options: dict[str, Any] = {"base_url": base_url} if base_url else {}
        config = SamplingConfig(
            k=k,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            seed=seed,
        )
        already = len(done_ids(output) & {r.id for r in records})
        with console.status(f"Loading {model} ({engine})"):
            runner = create_engine(engine, model, **options)
        try:
            with progress_bar() as progress:
                task = progress.add_task("Sampling", total=len(records), completed=already, info="")
                count = sample_records(
                    runner,
                    records,
                    output,
                    config,
                    model_name=model,
                    on_batch=lambda n: progress.update(task, advance=n),
                )
        finally:
            runner.close()
    console.print(f"sampled {count} prompts now ({already} from an earlier run) -> {output}")


@app.command()
def mine(
    samples: Annotated[
        list[Path], typer.Argument(help="Sample files from `sample`; several are merged in order.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where the hard pairs go (JSONL).")],
    unreadable: Annotated[
        str, typer.Option(help="skip (reference) or wrong: samples without readable answers.")
    ] = "skip",
) -> None:
    """Hard samples: prompts with right and wrong samples; weights (#wrong - #right) scaled to [0.8, 1.2].

    With several sample files (the main model's, then the 'diversity' models'), each is mined and scaled on its
    own and the sets are merged, keeping the first pair for each input.
    """
    from guardreasoner_training.mining import MiningReport, SampleSet, merge_pairs, mine_pairs
    from guardreasoner_training.records import read_rows, write_jsonl

    with _reported_errors():
        sets, reports = [], []
        for path in samples:
            report = MiningReport()
            rows = read_rows(path)
            sets.append(
                mine_pairs(
                    (SampleSet.from_row(row, str(path)) for row in rows), unreadable=unreadable, report=report
                )
            )
            reports.append(report)
            console.print(
                f"{path}: {report.pairs} hard of {report.prompts} prompts {report.by_task}, all right "
                f"{report.all_right}, all wrong {report.all_wrong}, unreadable samples "
                f"{report.unreadable_samples}"
            )
        merged = merge_pairs(sets)
        write_jsonl(output, merged)
        summary = {
            "files": [str(p) for p in samples],
            "reports": [r.as_dict() for r in reports],
            "pairs": len(merged),
        }
        output.with_name(output.name + ".report.json").write_text(
            json.dumps(summary, indent=2) + "\n", encoding="utf-8"
        )
    console.print(f"{len(merged)} pairs -> {output}")


@app.command()
def hsdpo(
    pairs: Annotated[Path, typer.Argument(help="Hard pairs from `mine` (JSONL).")],
    model: Annotated[str, typer.Option(help="The R-SFT model directory (policy and reference).")],
    output_dir: OutputDir,
    preset: Preset = "1b",
    epochs: Annotated[float, typer.Option(help="Epochs (paper: 2).")] = 2.0,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate (paper: 5e-6).")] = 5e-6,
    beta: Annotated[float, typer.Option(help="DPO beta (paper: 0.01).")] = 0.01,
    sft_weight: Annotated[float, typer.Option(help="SFT term on the chosen answer (paper: 2.0).")] = 2.0,
    sft_normalization: Annotated[
        str, typer.Option(help="sequence (LLaMA-Factory) or token (trl).")
    ] = "sequence",
    cutoff_len: Annotated[int, typer.Option(help="Tokens per sequence (paper: 2048).")] = 2048,
    per_device_batch: Annotated[int | None, typer.Option(help="Pairs per device and step.")] = None,
    grad_accum: Annotated[
        int | None, typer.Option(help="Accumulation (default: reach the paper's 256).")
    ] = None,
    lora: Lora = False,
    lora_r: LoraRank = 16,
    liger: Liger = False,
    bf16: Bf16 = True,
    resume: Resume = False,
    gradient_checkpointing: Checkpointing = None,
    extra: ExtraArgs = None,
) -> None:
    """Hard-sample DPO: weighted sigmoid DPO plus an SFT term on the chosen answer. The format is read from --model."""
    from guardreasoner.model_source import read_prompt_format

    from guardreasoner_training.hsdpo import HSDPOConfig, train_hsdpo
    from guardreasoner_training.progress import RichProgressCallback
    from guardreasoner_training.records import read_rows

    with _reported_errors():
        prompt_format = read_prompt_format(model) if Path(model).is_dir() else "raw"
        config = _stage_config(
            HSDPOConfig,
            stage="hsdpo",
            output_dir=output_dir,
            preset=preset,
            per_device_batch=per_device_batch,
            grad_accum=grad_accum,
            extra=extra,
            gradient_checkpointing=gradient_checkpointing,
            num_train_epochs=epochs,
            learning_rate=learning_rate,
            beta=beta,
            sft_weight=sft_weight,
            sft_normalization=sft_normalization,
            max_length=cutoff_len,
            prompt_format=prompt_format,
            chat_template="tokenizer",  # the R-SFT model saved the template it was trained with
            use_lora=lora,
            lora_r=lora_r,
            liger_kernels=liger,
            bf16=bf16,
        )
        saved = train_hsdpo(
            read_rows(pairs), model, config, resume=resume, callbacks=[RichProgressCallback("HS-DPO")]
        )
    console.print(f"HS-DPO model saved to {saved}")


@app.command()
def presets() -> None:
    """Show the 1B/3B/8B presets and the paper's hyperparameters."""
    from guardreasoner_training.presets import HSDPO_EFFECTIVE_BATCH, PRESETS, RSFT_EFFECTIVE_BATCH

    for preset in PRESETS.values():
        console.print(
            f"{preset.name}: {preset.base_model}; R-SFT {preset.rsft_per_device_batch}/device (effective "
            f"{RSFT_EFFECTIVE_BATCH}), HS-DPO {preset.hsdpo_per_device_batch}/device (effective {HSDPO_EFFECTIVE_BATCH})"
        )
    console.print(
        "R-SFT: lr 5e-5, 3 epochs, cosine, cutoff 2048. HS-DPO: lr 5e-6, 2 epochs, beta 0.01, SFT weight 2.0."
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
