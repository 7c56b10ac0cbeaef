"""The ``guardreasoner-train`` command line: one subcommand per stage, each reading and writing plain files.

The training stages' flags come from their config dataclasses (:func:`~guardreasoner_training.flags.config_flags`),
so a default and its help are written once, in the config. Everything
heavy (torch, transformers, trl) is imported inside the commands, so ``--help`` is quick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from guardreasoner.terminal import fail, run_app

from guardreasoner_training.flags import config_flags, flag_field
from guardreasoner_training.modeling import ModelOptions
from guardreasoner_training.presets import (
    HSDPO_EFFECTIVE_BATCH,
    RSFT_EFFECTIVE_BATCH,
    HSDPOHyperparameters,
    RSFTHyperparameters,
    Stage,
    batch_layout,
    get_preset,
)
from guardreasoner_training.progress import console, progress_bar
from guardreasoner_training.sampling import SamplingConfig
from guardreasoner_training.synthesize import TeacherConfig

app = typer.Typer(
    name="guardreasoner-train",
    help=(
        "Train GuardReasoner guards on your own data. Stages: synthesize -> prepare -> rsft -> sample -> mine "
        "-> hsdpo; each reads and writes plain files, so you can stop, inspect and resume between them."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

OutputDir = Annotated[Path, typer.Option("--output-dir", "-o", help="Where the model and checkpoints go.")]
MODEL_FLAGS = (
    "use_lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "liger_kernels",
    "compile_layers",
    "master_dtype",
)
SCHEDULE_FLAGS = ("learning_rate", "num_train_epochs", "lr_scheduler_type", "warmup_steps", "logging_steps")


def _errors() -> tuple[type[Exception], ...]:
    from guardreasoner.errors import GuardReasonerError

    return (GuardReasonerError, ValueError, OSError)


@contextmanager
def _reported_errors() -> Iterator[None]:
    """What every stage does with a user-facing error: one plain ``error:`` line and exit status 2, no traceback."""
    try:
        yield
    except _errors() as exc:
        fail(str(exc))


@app.callback()
def _root() -> None:
    """Train GuardReasoner guards on your own data."""


# ---------------------------------------------------------------------------------------------------------------


@app.command()
@config_flags(
    (
        TeacherConfig,
        (
            "model",
            "base_url",
            "api_key",
            "concurrency",
            "max_attempts",
            "timeout_s",
            "temperature",
            "max_tokens",
        ),
    )
)
def synthesize(
    input: Annotated[
        Path, typer.Argument(help="Labelled conversations (.json/.jsonl): prompt, response, labels.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where kept traces are appended (JSONL).")],
    *,
    fields: dict[str, Any],
) -> None:
    """Reasoning traces from a teacher (gold labels in its instruction); keeps those whose answers match the labels."""
    from guardreasoner_training.records import read_rows, to_labelled_examples
    from guardreasoner_training.synthesize import rejected_path
    from guardreasoner_training.synthesize import synthesize as run

    with _reported_errors():
        examples = to_labelled_examples(read_rows(input), where=str(input))
        config = TeacherConfig(**fields)
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


def _choose_bf16(bf16: bool | None) -> bool:
    """``--bf16``/``--no-bf16`` as given; left out, bf16 where a CUDA device supports it (and say so when not)."""
    if bf16 is not None:
        return bf16
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return True
    console.print("bf16 off: this machine has no CUDA device that supports it (pass --bf16 to force it).")
    return False


def _extra_args(extra: list[str] | None) -> dict[str, Any]:
    """The ``--arg key=value`` extras; a value is read as JSON when it parses, else kept as a string."""
    import json

    kwargs: dict[str, Any] = {}
    for item in extra or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--arg '{item}': give key=value, for example --arg max_steps=10.")
        try:
            kwargs[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key.strip()] = value
    return kwargs


def _check_base_model(model: str) -> None:
    """Fail fast when a hub id is neither cached nor reachable, instead of after the hub's retries."""
    from guardreasoner.model_source import check_hub_model

    if not Path(model).expanduser().exists():
        check_hub_model(model)


def _chat_template(value: str) -> str:
    path = Path(value)
    return (
        path.read_text(encoding="utf-8") if value not in ("llama3", "tokenizer") and path.is_file() else value
    )


@dataclass
class StageRun:
    """The flags both training commands (rsft, hsdpo) add to their config's: the batch layout over the preset's,
    precision, resuming, trl extras. ``{effective_batch}`` in a help is the stage's."""

    per_device_batch: int | None = flag_field(None, "Sequences (pairs for hsdpo) per device and step.")
    grad_accum: int | None = flag_field(None, "Accumulation (default: reach the paper's {effective_batch}).")
    bf16: bool | None = flag_field(
        None,
        "bf16 mixed precision (fp32 master weights). Default: on where a CUDA device supports bf16, else off.",
    )
    resume: bool = flag_field(False, "Resume from the last checkpoint in --output-dir.")
    gradient_checkpointing: bool | None = flag_field(
        None, "Recompute activations to save memory (default: the preset's, on)."
    )
    arg: list[str] | None = flag_field(
        None, "Any other trl/transformers training argument, as key=value (repeatable)."
    )

    @classmethod
    def take(cls, fields: dict[str, Any]) -> StageRun:
        """Its flags taken out of a command's ``fields`` (leaving the config's); ``--arg`` checked before anything loads."""
        run = cls(**{name: fields.pop(name) for name in RUN_FLAGS})
        _extra_args(run.arg)
        return run

    def config(
        self, config_class: type, stage: Stage, *, output_dir: Path, preset: str, fields: dict[str, Any]
    ) -> Any:
        """The stage's config: its flags' ``fields``, the preset's batch layout, the ``--arg`` extras."""
        kwargs: dict[str, Any] = batch_layout(
            preset,
            stage,
            per_device_batch=self.per_device_batch,
            grad_accum=self.grad_accum,
            gradient_checkpointing=self.gradient_checkpointing,
        )
        kwargs["bf16"] = _choose_bf16(self.bf16)
        kwargs.update(_extra_args(self.arg))
        return config_class(output_dir=str(output_dir), **fields, disable_tqdm=True, report_to=[], **kwargs)


RUN_FLAGS = ("per_device_batch", "grad_accum", "bf16", "resume", "gradient_checkpointing", "arg")


@app.command()
@config_flags(
    (StageRun, RUN_FLAGS),
    (RSFTHyperparameters, (*SCHEDULE_FLAGS, "cutoff_len")),
    (ModelOptions, ("prompt_format", "chat_template", "attn_implementation", *MODEL_FLAGS)),
    help_values={"effective_batch": RSFT_EFFECTIVE_BATCH},
)
def rsft(
    data: Annotated[Path, typer.Argument(help="The prepared training set (train.jsonl).")],
    output_dir: OutputDir,
    model: Annotated[
        str | None, typer.Option(help="Base model (hub id or directory; default: the preset's).")
    ] = None,
    preset: Annotated[
        str, typer.Option(help="1b, 3b or 8b: the base model (unless --model) and the paper's batch layout.")
    ] = "1b",
    eval_data: Annotated[Path | None, typer.Option(help="Optional eval set (eval.jsonl).")] = None,
    padding_free: Annotated[
        bool, typer.Option(help="Concatenate each batch into one row (no padding).")
    ] = False,
    *,
    fields: dict[str, Any],
) -> None:
    """Reasoning SFT: full fine-tuning (or LoRA) with the loss on the answer only."""
    from guardreasoner.prompt import PromptFormat

    from guardreasoner_training.prepare import load_training_records

    formats = [f.value for f in PromptFormat]
    if fields["prompt_format"] not in formats:
        fail(
            f"--prompt-format '{fields['prompt_format']}' is not a format; choose one of {', '.join(formats)}."
        )
    run = StageRun.take(fields)
    with _reported_errors():
        fields["chat_template"] = _chat_template(fields["chat_template"])
        chosen = get_preset(preset)  # an unknown preset fails here, before anything loads
        base = model or chosen.base_model
        records = load_training_records(data)
        evaluation = load_training_records(eval_data) if eval_data else None
        _check_base_model(base)
        from guardreasoner_training.callbacks import RichProgressCallback
        from guardreasoner_training.rsft import RSFTConfig, train_rsft

        fields["padding_free"] = padding_free
        config = run.config(RSFTConfig, "rsft", output_dir=output_dir, preset=preset, fields=fields)
        saved = train_rsft(
            records,
            base,
            config,
            eval_records=evaluation,
            resume=run.resume,
            callbacks=[RichProgressCallback("R-SFT")],
        )
    console.print(
        f"R-SFT model saved to {saved} (prompt format {config.prompt_format}, recorded in guardreasoner.json)"
    )


@app.command()
@config_flags((SamplingConfig, ("k", "temperature", "top_p", "max_new_tokens", "batch_size", "seed")))
def sample(
    data: Annotated[Path, typer.Argument(help="The training set to sample on (train.jsonl).")],
    model: Annotated[str, typer.Option(help="The R-SFT model directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where samples are appended (JSONL).")],
    engine: Annotated[str, typer.Option(help="auto (vLLM when present), hf, vllm or openai.")] = "auto",
    base_url: Annotated[str | None, typer.Option(help="For --engine openai: the server's /v1 URL.")] = None,
    *,
    fields: dict[str, Any],
) -> None:
    """k samples per training prompt from the R-SFT model (resumes an interrupted run)."""
    from guardreasoner.engines import create_engine

    from guardreasoner_training.prepare import load_training_records
    from guardreasoner_training.sampling import done_ids, sample_records

    with _reported_errors():
        records = load_training_records(data)
        options: dict[str, Any] = {"base_url": base_url} if base_url else {}
        config = SamplingConfig(**fields)
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
    from guardreasoner_training.mining import MiningReport, mine_files

    def show(path: Path, report: MiningReport) -> None:
        console.print(
            f"{path}: {report.pairs} hard of {report.prompts} prompts {report.by_task}, all right "
            f"{report.all_right}, all wrong {report.all_wrong}, unreadable samples {report.unreadable_samples}"
        )

    with _reported_errors():
        merged = mine_files(samples, output, unreadable=unreadable, on_file=show)
    console.print(f"{len(merged)} pairs -> {output}")


@app.command()
@config_flags(
    (StageRun, RUN_FLAGS),
    (HSDPOHyperparameters, (*SCHEDULE_FLAGS, "beta", "sft_weight", "sft_normalization", "max_length")),
    (ModelOptions, MODEL_FLAGS),
    help_values={"effective_batch": HSDPO_EFFECTIVE_BATCH},
)
def hsdpo(
    pairs: Annotated[Path, typer.Argument(help="Hard pairs from `mine` (JSONL).")],
    model: Annotated[str, typer.Option(help="The R-SFT model directory (policy and reference).")],
    output_dir: OutputDir,
    preset: Annotated[
        str, typer.Option(help="1b, 3b or 8b: the paper's batch layout for that size (--model is the model).")
    ] = "1b",
    *,
    fields: dict[str, Any],
) -> None:
    """Hard-sample DPO: weighted sigmoid DPO plus an SFT term on the chosen answer. The format is read from --model."""
    from guardreasoner.model_source import read_prompt_format

    from guardreasoner_training.records import read_rows

    run = StageRun.take(fields)
    with _reported_errors():
        get_preset(preset)  # an unknown preset fails here, before anything loads
        prompt_format = read_prompt_format(model) if Path(model).is_dir() else "raw"
        rows = read_rows(pairs)
        _check_base_model(model)
        from guardreasoner_training.callbacks import RichProgressCallback
        from guardreasoner_training.hsdpo import HSDPOConfig, train_hsdpo

        fields["prompt_format"] = prompt_format
        fields["chat_template"] = "tokenizer"  # the R-SFT model saved the template it was trained with
        config = run.config(HSDPOConfig, "hsdpo", output_dir=output_dir, preset=preset, fields=fields)
        saved = train_hsdpo(
            rows, model, config, resume=run.resume, callbacks=[RichProgressCallback("HS-DPO")]
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
    r, h = RSFTHyperparameters(), HSDPOHyperparameters()
    console.print(
        f"R-SFT: lr {r.learning_rate:g}, {r.num_train_epochs:g} epochs, {r.lr_scheduler_type}, cutoff {r.cutoff_len}. "
        f"HS-DPO: lr {h.learning_rate:g}, {h.num_train_epochs:g} epochs, {h.lr_scheduler_type}, beta {h.beta:g}, "
        f"SFT weight {h.sft_weight:g}, cutoff {h.max_length}."
    )


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
