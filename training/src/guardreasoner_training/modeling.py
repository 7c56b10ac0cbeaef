"""What both stage trainers share: loading the model to train, the speed options, and saving a model the core can run.

:class:`ModelOptions` is the part of both stage configs that is not trl's; :func:`prepare_model_and_tokenizer`
is what both trainers do before trl's ``__init__``; :class:`StageTrainer`, mixed in ahead of trl's trainer, does it
and the rest both trainers add: the speed options, and a model card in every saved directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from guardreasoner.model_source import write_model_card
from guardreasoner.prompt import PromptFormat

from guardreasoner_training.attention import VARLEN_ATTENTION, register_varlen_attention
from guardreasoner_training.flags import flag_field
from guardreasoner_training.formats import end_of_turn_token_id, prepare_tokenizer


@dataclass
class ModelOptions:
    """Fields both stage configs add to trl's: prompt format, LoRA, and the speed options."""

    prompt_format: str = flag_field(
        "raw",
        "'raw' (plain text, as the released models are run) or 'chat' (the user turn of a chat template).",
    )
    chat_template: str | None = flag_field(
        "llama3",
        "For --prompt-format chat: 'llama3' (LLaMA-Factory's, the paper's), 'tokenizer', or a Jinja string.",
    )
    attn_implementation: str | None = flag_field(
        None,
        "transformers attention: 'sdpa', 'flex_attention', 'eager', or 'guardreasoner_varlen' (padding-free, CUDA).",
        aliases=["--attn"],
    )
    master_dtype: str = flag_field(
        "float32",
        "dtype of the trained weights; float32 with --bf16 is mixed precision with fp32 master weights.",
    )
    use_lora: bool = flag_field(False, "Train a LoRA adapter instead of all weights.", aliases=["--lora"])
    lora_r: int = flag_field(16, "LoRA rank.")
    lora_alpha: int = flag_field(32, "LoRA alpha.")
    lora_dropout: float = flag_field(0.05, "LoRA dropout.")
    lora_target_modules: list[str] | str = flag_field(
        "all-linear", "Modules LoRA adapts ('all-linear' or a list of names)."
    )
    liger_kernels: bool = flag_field(
        False, "Replace RMSNorm, SwiGLU and RoPE with Liger's Triton kernels (CUDA).", aliases=["--liger"]
    )
    compile_layers: bool = flag_field(
        False,
        "torch.compile each decoder layer (dynamic shapes), not the whole model.",
        aliases=["--compile"],
    )

    def check_model_options(self) -> None:
        self.prompt_format = PromptFormat(self.prompt_format).value
        if self.attn_implementation == VARLEN_ATTENTION and not getattr(self, "padding_free", True):
            raise ValueError(f"attn_implementation='{VARLEN_ATTENTION}' needs padding_free=True.")
        if self.master_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"master_dtype must be float32, bfloat16 or float16, got '{self.master_dtype}'.")


logger = logging.getLogger("guardreasoner_training")


def filter_counted(dataset: Any, keep: Callable[[dict[str, Any]], bool], what: str, **kwargs: Any) -> Any:
    """``dataset.filter(keep)``, saying how many examples it left out and why (``what``) in a warning."""
    before = len(dataset)
    dataset = dataset.filter(keep, **kwargs)
    if len(dataset) < before:
        logger.warning("Left out %d of %d %s.", before - len(dataset), before, what)
    return dataset


def model_init_kwargs(options: ModelOptions, given: dict[str, Any] | None) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for a model trl loads from a path: master dtype and attention."""
    kwargs: dict[str, Any] = {"dtype": options.master_dtype}
    if options.attn_implementation:
        kwargs["attn_implementation"] = options.attn_implementation
    return {**kwargs, **(given or {})}


def prepare_attention(model: Any, options: ModelOptions) -> None:
    """Register the varlen attention when asked for, and switch an already loaded model to the asked attention."""
    if options.attn_implementation == VARLEN_ATTENTION:
        register_varlen_attention()
    if (
        model is not None
        and not isinstance(model, (str, os.PathLike))
        and options.attn_implementation
        and model.config._attn_implementation != options.attn_implementation
    ):
        model.set_attn_implementation(options.attn_implementation)


def prepare_model_and_tokenizer(
    model: str | os.PathLike[str] | Any,
    args: ModelOptions,
    processing_class: Any = None,
    peft_config: Any = None,
) -> tuple[Any, Any, Any]:
    """What both trainers do before trl's ``__init__``; returns ``(model, processing_class, peft_config)``.

    Sets up the asked attention, has trl load a model given by path in the master dtype, loads the tokenizer
    from the model when none is given and prepares it for the prompt format, and builds the LoRA config when
    ``use_lora`` is set and none is given. ``args`` is a stage config (``model_init_kwargs`` is updated in place).
    """
    import transformers

    prepare_attention(model, args)
    if isinstance(model, (str, os.PathLike)):
        model = os.fspath(model)
        args.model_init_kwargs = model_init_kwargs(args, args.model_init_kwargs)
    if processing_class is None:
        source = model if isinstance(model, str) else model.config._name_or_path
        processing_class = transformers.AutoTokenizer.from_pretrained(source)
    prepare_tokenizer(processing_class, args.prompt_format, args.chat_template)
    if peft_config is None and args.use_lora:
        peft_config = lora_config(args)
    return model, processing_class, peft_config


def apply_speedups(model: Any, options: ModelOptions) -> None:
    """The options applied to the model the trainer holds: Liger kernels, then regional compilation."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if options.liger_kernels:
        apply_liger(base)
    if options.compile_layers:
        compile_decoder_layers(base)


def apply_liger(model: Any) -> None:
    """Liger's fused RMSNorm, SwiGLU and RoPE kernels on a Llama model (the LM head stays trl's fused one)."""
    from guardreasoner.errors import require

    monkey = require("liger_kernel.transformers", extra="liger", feature="--liger-kernels")
    if model.config.model_type != "llama":
        raise ValueError(f"--liger-kernels supports Llama models here, not '{model.config.model_type}'.")
    from transformers.models.llama import modeling_llama

    # Liger swaps the module classes process-wide as well as this model's modules; put the classes back so that
    # models built later (a reference model, another run in the same process) are untouched. Its RoPE replaces
    # a module function and stays process-wide (the same arithmetic, fused).
    classes = (modeling_llama.LlamaRMSNorm, modeling_llama.LlamaMLP)
    try:
        monkey.apply_liger_kernel_to_llama(
            rope=True,
            rms_norm=True,
            swiglu=True,
            cross_entropy=False,
            fused_linear_cross_entropy=False,
            model=model,
        )
    finally:
        modeling_llama.LlamaRMSNorm, modeling_llama.LlamaMLP = classes


def compile_decoder_layers(model: Any) -> None:
    """Regional compilation: one compiled graph shared by the identical decoder layers, dynamic in length."""
    backbone = getattr(model, model.base_model_prefix, model)
    for layer in backbone.layers:
        layer.compile(dynamic=True)


def lora_config(options: ModelOptions) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=options.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def finalize_saved_model(
    output_dir: str | os.PathLike[str], tokenizer: Any, prompt_format: str, **info: Any
) -> Path:
    """Make a saved directory runnable by the core: model card, and for chat models the end-of-turn stop token."""
    import transformers

    output_dir = Path(output_dir)
    if PromptFormat(prompt_format) is PromptFormat.CHAT and (output_dir / "config.json").is_file():
        eot = end_of_turn_token_id(tokenizer)
        if eot is not None:
            try:
                generation = transformers.GenerationConfig.from_pretrained(output_dir)
            except OSError:
                generation = transformers.GenerationConfig()
            ids = generation.eos_token_id
            ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
            if eot not in ids:
                generation.eos_token_id = [*ids, eot]
                generation.save_pretrained(output_dir)
    write_model_card(output_dir, prompt_format, trained_by="guardreasoner-training", **info)
    return output_dir


def merge_lora_and_save(trainer: Any, output_dir: str | os.PathLike[str]) -> None:
    """Save the full model: LoRA adapters merged into the base weights, so the core loads it like any model."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        merged = model.merge_and_unload()
        merged.save_pretrained(output_dir)
        trainer.processing_class.save_pretrained(output_dir)
    else:
        trainer.save_model(output_dir)


def resume_point(output_dir: str, resume: bool | str | None) -> bool | str | None:
    """``True`` resumes from the last checkpoint when there is one (and starts afresh when there is none)."""
    if resume is True:
        from transformers.trainer_utils import get_last_checkpoint

        return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
    return resume or None


class StageTrainer:
    """Mixed in ahead of trl's trainer (``class RSFTTrainer(StageTrainer, SFTTrainer)``): what both stage trainers
    add to trl's.

    Before trl's ``__init__`` it checks ``args`` is the stage's config and prepares the model and tokenizer
    (:func:`prepare_model_and_tokenizer`); after it, applies the speed options to the model. Every directory the
    trainer saves, checkpoints included, gets the model card for ``_stage``, and :meth:`save_final_model` writes
    the full model the core runs.
    """

    _stage: ClassVar[str]
    """The stage recorded in the model card ('rsft', 'hsdpo')."""
    config_class: ClassVar[type[ModelOptions]]
    """The stage config ``args`` must be."""

    def __init__(
        self,
        model: str | os.PathLike[str] | Any,
        args: ModelOptions | None = None,
        *,
        processing_class: Any = None,
        peft_config: Any = None,
        **kwargs: Any,
    ):
        if not isinstance(args, self.config_class):
            raise TypeError(f"{type(self).__name__} needs an {self.config_class.__name__}.")
        model, processing_class, peft_config = prepare_model_and_tokenizer(
            model, args, processing_class, peft_config
        )
        super().__init__(
            model,
            args=args,
            processing_class=processing_class,
            peft_config=peft_config,
            **kwargs,
        )
        apply_speedups(self.model, args)

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        finalize_saved_model(output_dir, self.processing_class, self.args.prompt_format, stage=self._stage)

    def save_final_model(self, output_dir: str | os.PathLike[str] | None = None) -> Path:
        """Save a directory the core can run: full weights (LoRA merged), tokenizer, model card."""
        output_dir = Path(output_dir or self.args.output_dir)
        merge_lora_and_save(self, output_dir)
        return finalize_saved_model(
            output_dir,
            self.processing_class,
            self.args.prompt_format,
            stage=self._stage,
            lora=self.args.use_lora,
        )

    def train_and_save(self, resume: bool | str | None = None) -> Path:
        """Train (``resume``: see :func:`resume_point`), then :meth:`save_final_model`; returns its directory."""
        self.train(resume_from_checkpoint=resume_point(self.args.output_dir, resume))
        return self.save_final_model()
