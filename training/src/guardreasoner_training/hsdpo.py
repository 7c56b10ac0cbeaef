"""Stage 6, HS-DPO: DPO on mined hard samples, each pair weighted by how hard it was.

trl's DPOTrainer has no per-sample weight (its ``use_weighting`` is WPO, a different method), so
:class:`HSDPOTrainer` extends it at three points:

- the collator (:class:`DataCollatorForWeightedPreference`, made from the one trl builds) carries the
  ``sample_weight`` column into the batch, and :meth:`HSDPOTrainer._set_signature_columns_if_needed` keeps that
  column in the dataset;
- the reference forward (:meth:`HSDPOTrainer.compute_ref_log_probs` and the one inside the loss) never sees it;
- :meth:`HSDPOTrainer._compute_loss` computes the per-pair losses and weights them (:mod:`guardreasoner_training.losses`).

With all weights 1 the loss equals trl's own ``DPOTrainer`` loss on the same batch (``loss_type=["sigmoid",
"sft"]``, ``loss_weights=[1, sft_weight]`` with ``sft_normalization="token"``; plain sigmoid with ``sft_weight=0``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import is_peft_model
from guardreasoner.prompt import encode_prompt, join_prompt
from trl import DPOConfig, DPOTrainer
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import use_adapter

from guardreasoner_training.errors import TrainingDataError
from guardreasoner_training.flags import flag_field
from guardreasoner_training.formats import preference_example, tokenize_answer
from guardreasoner_training.losses import SFT_NORMALIZATIONS, hsdpo_loss
from guardreasoner_training.modeling import ModelOptions, StageTrainer, filter_counted
from guardreasoner_training.presets import HSDPOHyperparameters

WEIGHT_COLUMN = "sample_weight"


@dataclass
class HSDPOConfig(HSDPOHyperparameters, DPOConfig, ModelOptions):
    """trl's DPOConfig with the paper's HS-DPO settings as defaults (:class:`~guardreasoner_training.presets.HSDPOHyperparameters`).

    The paper: learning rate 5e-6, 2 epochs, cosine without warm-up, β = 0.01, sigmoid loss plus an SFT term on
    the chosen answer with weight 2.0 (LLaMA-Factory's ``pref_ftx``), cutoff 2048, effective batch 256.
    """

    weight_column: str = flag_field(WEIGHT_COLUMN, "Dataset column holding the sample weights.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if list(self.loss_type) != ["sigmoid"] or self.loss_weights not in (None, [1.0], [1]):
            raise ValueError(
                "HSDPOTrainer computes the sigmoid loss and its own weighted SFT term: leave loss_type=['sigmoid'] "
                "and set sft_weight instead of adding 'sft' to loss_type."
            )
        if self.use_weighting or self.ld_alpha is not None or self.f_divergence_type != "reverse_kl":
            raise ValueError(
                "HSDPOTrainer supports plain DPO only (no use_weighting, ld_alpha or f_divergence_type)."
            )
        if self.sft_normalization not in SFT_NORMALIZATIONS:
            raise ValueError(
                f"sft_normalization must be one of {SFT_NORMALIZATIONS}, got '{self.sft_normalization}'."
            )
        self.check_model_options()


@dataclass
class DataCollatorForWeightedPreference(DataCollatorForPreference):
    """trl's preference collator, plus a ``sample_weight`` tensor (one per pair; 1.0 where a pair has none)."""

    weight_column: str = WEIGHT_COLUMN

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        weights = [example.get(self.weight_column) for example in examples]
        batch[WEIGHT_COLUMN] = torch.tensor(
            [1.0 if w is None else float(w) for w in weights], dtype=torch.float32
        )
        return batch


def build_preference_dataset(pairs: list[dict[str, Any]]) -> Any:
    """A preference dataset (plain text, with weights) from mined pairs (``instruction``, ``input``, ``chosen``, ``rejected``)."""
    from datasets import Dataset

    rows = [
        preference_example(
            join_prompt(pair["instruction"], pair["input"]),
            pair["chosen"],
            pair["rejected"],
            pair.get(WEIGHT_COLUMN, 1.0),
        )
        for pair in pairs
    ]
    return Dataset.from_list(rows)


def tokenize_preference_dataset(
    dataset: Any, tokenizer: Any, prompt_format: str, *, num_proc: int | None = None
) -> Any:
    """``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` from text, the prompt encoded as the core's engines do."""

    def encode(example: dict[str, Any]) -> dict[str, Any]:
        prompt = example["prompt"]
        return {
            "prompt_ids": encode_prompt(tokenizer, prompt, prompt_format),
            "chosen_ids": tokenize_answer(tokenizer, prompt, example["chosen"], prompt_format),
            "rejected_ids": tokenize_answer(tokenizer, prompt, example["rejected"], prompt_format),
        }

    kwargs = {"num_proc": num_proc} if num_proc else {}
    return dataset.map(encode, remove_columns=["prompt", "chosen", "rejected"], **kwargs)


def _without_weight(inputs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in inputs.items() if key != WEIGHT_COLUMN}


class HSDPOTrainer(StageTrainer, DPOTrainer):
    """trl's DPOTrainer with per-sample weights and the paper's SFT term (see the module docstring)."""

    _tag_names = ["trl", "dpo", "guardreasoner", "hs-dpo"]
    _stage = "hsdpo"
    config_class = HSDPOConfig

    def __init__(
        self, model: str | Any, args: HSDPOConfig | None = None, *, data_collator: Any = None, **kwargs: Any
    ):
        super().__init__(model, args, data_collator=data_collator, **kwargs)
        if data_collator is None:
            # trl built its preference collator (and checked the pad token); make it carry the weights too
            self.data_collator = DataCollatorForWeightedPreference(
                **vars(self.data_collator), weight_column=self.args.weight_column
            )

    # -- extension points -------------------------------------------------------------------------------------

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        """Tokenize prompt and answers apart, as the core's engines encode the prompt; drop prompts over max_length."""
        columns = set(dataset.column_names or [])
        if "prompt_ids" in columns:
            return dataset
        if not {"prompt", "chosen", "rejected"} <= columns:
            raise TrainingDataError(
                f"The {dataset_name} dataset needs 'prompt', 'chosen' and 'rejected' columns (see "
                f"build_preference_dataset); it has {sorted(columns)}."
            )
        dataset = tokenize_preference_dataset(
            dataset, processing_class, args.prompt_format, num_proc=args.dataset_num_proc
        )
        if args.max_length is not None:
            dataset = filter_counted(
                dataset,
                lambda example: len(example["prompt_ids"]) < args.max_length,
                f"HS-DPO {dataset_name} pairs: their prompt alone takes max_length={args.max_length} tokens or more "
                "(raise --cutoff-len to keep them)",
            )
        return dataset

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self.args.weight_column not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, self.args.weight_column]

    def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
        return super().compute_ref_log_probs(model, _without_weight(inputs))

    def _reference_logps(
        self, inputs: dict[str, Any], model_kwargs: dict[str, Any], labels: torch.Tensor, seq_len: int
    ):
        """Summed answer log-probabilities under the reference model (precomputed when configured)."""
        if self.precompute_ref_logps:
            return inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
        ):
            if is_peft_model(self.model) and self.ref_model is None:
                unwrapped = self.accelerator.unwrap_model(self.model)
                adapter = "ref" if "ref" in unwrapped.peft_config else None
                context = use_adapter(unwrapped, adapter_name=adapter)
                ref_model = self.model
            else:
                context = contextlib.nullcontext()
                ref_model = self.ref_model
            with context:
                outputs = ref_model(**model_kwargs, labels=labels, fused_lm_head=True)
        return outputs.log_probs[:, -seq_len:].sum(dim=1).chunk(2, dim=0)

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool):
        mode = "train" if self.model.training else "eval"
        weights = inputs.get(WEIGHT_COLUMN)
        inputs = _without_weight(inputs)
        non_model = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}
        model_kwargs = {key: value for key, value in inputs.items() if key not in non_model}
        model_kwargs["use_cache"] = False
        completion_mask = inputs["completion_mask"]
        shift_mask = completion_mask[..., 1:]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)

        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        seq_len = shift_mask.size(1)
        per_token_logps = outputs.log_probs[:, -seq_len:]  # zero where the label is ignored
        chosen_logps, rejected_logps = per_token_logps.sum(dim=1).chunk(2, dim=0)
        ref_chosen_logps, ref_rejected_logps = self._reference_logps(inputs, model_kwargs, labels, seq_len)
        chosen_token_logps, _ = per_token_logps.chunk(2, dim=0)
        chosen_mask, _ = shift_mask.chunk(2, dim=0)

        parts = hsdpo_loss(
            chosen_logps=chosen_logps,
            rejected_logps=rejected_logps,
            ref_chosen_logps=ref_chosen_logps.to(chosen_logps.device),
            ref_rejected_logps=ref_rejected_logps.to(chosen_logps.device),
            chosen_token_logps=chosen_token_logps,
            chosen_mask=chosen_mask,
            weights=weights,
            beta=self.beta,
            sft_weight=self.args.sft_weight,
            sft_normalization=self.args.sft_normalization,
        )
        self._log_pair_metrics(
            mode, inputs, parts, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, weights
        )
        if return_outputs:
            return parts.loss, outputs
        return parts.loss

    def _log_pair_metrics(
        self, mode, inputs, parts, chosen_logps, rejected_logps, ref_chosen, ref_rejected, weights
    ):
        gather = self.accelerator.gather_for_metrics
        metrics = self._metrics[mode]
        chosen_rewards = self.beta * (chosen_logps - ref_chosen.to(chosen_logps.device)).detach()
        rejected_rewards = self.beta * (rejected_logps - ref_rejected.to(rejected_logps.device)).detach()
        metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
        metrics["rewards/accuracies"].append(
            gather((chosen_rewards > rejected_rewards).float()).mean().item()
        )
        metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
        metrics["logps/chosen"].append(gather(chosen_logps.detach()).mean().item())
        metrics["logps/rejected"].append(gather(rejected_logps.detach()).mean().item())
        metrics["loss/dpo"].append(gather(parts.dpo.detach()).mean().item())
        metrics["loss/sft"].append(gather(parts.sft.detach()).mean().item())
        if weights is not None:
            metrics["sample_weight"].append(gather(weights.detach()).mean().item())
        if mode == "train":
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item() // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]


def train_hsdpo(
    pairs: list[dict[str, Any]],
    model: str,
    config: HSDPOConfig,
    *,
    resume: bool | str | None = None,
    callbacks: list[Any] | None = None,
) -> Path:
    """Run HS-DPO on mined pairs from the R-SFT model and save a model the core can run; returns its directory."""
    for index, pair in enumerate(pairs):
        missing = [
            name
            for name in ("instruction", "input", "chosen", "rejected")
            if not isinstance(pair.get(name), str)
        ]
        if missing:
            raise TrainingDataError(
                f"Pair {index} lacks {', '.join(missing)}; hsdpo reads the pairs `guardreasoner-train mine` writes."
            )
        weight = pair.get(WEIGHT_COLUMN, 1.0)
        if not isinstance(weight, (int, float)) or weight < 0:
            raise TrainingDataError(
                f"Pair {index} has sample_weight {weight!r}; weights must be non-negative numbers."
            )
    trainer = HSDPOTrainer(
        model, args=config, train_dataset=build_preference_dataset(pairs), callbacks=callbacks
    )
    return trainer.train_and_save(resume)
