"""The HS-DPO loss: DPO's sigmoid loss plus an SFT term on the chosen answer, weighted per sample.

For pair ``i`` with weight ``w_i`` (the mined sample weight, 1 when none):

    dpo_i = -log σ(β · ((log π(c_i) - log π_ref(c_i)) - (log π(r_i) - log π_ref(r_i))))
    loss  = mean_i(w_i · dpo_i) + λ · sft

where ``λ`` is ``sft_weight`` (LLaMA-Factory's ``pref_ftx``, 2.0 in the paper) and ``sft`` is the negative
log-likelihood of the chosen answer, normalised one of two ways:

- ``"sequence"`` (LLaMA-Factory, the paper's runs): each pair's mean token NLL, ``sft = mean_i(w_i · nll_i / n_i)``;
- ``"token"`` (trl's ``loss_type=["sigmoid", "sft"]``): every chosen token of the batch alike,
  ``sft = Σ_i w_i · nll_i / Σ_i n_i``.

With all weights 1 and ``"token"`` this is exactly trl's ``DPOTrainer`` loss with ``loss_type=["sigmoid", "sft"]``
and ``loss_weights=[1, λ]``; with ``sft_weight=0`` it is trl's plain sigmoid loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SFT_NORMALIZATIONS = ("sequence", "token")


def sigmoid_dpo_losses(
    chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, beta: float
) -> torch.Tensor:
    """Per-pair DPO sigmoid loss from the policy/reference log-ratios of the chosen and rejected answers."""
    return -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))


def chosen_nll(per_token_logps: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair summed NLL of the chosen answer's tokens, and the number of those tokens."""
    mask = mask.to(per_token_logps.dtype)
    return -(per_token_logps * mask).sum(dim=1), mask.sum(dim=1)


def sft_term(
    nll_sums: torch.Tensor, token_counts: torch.Tensor, weights: torch.Tensor, normalization: str
) -> torch.Tensor:
    """The weighted SFT term (see the module docstring for the two normalisations)."""
    if normalization == "sequence":
        return (weights * nll_sums / token_counts.clamp(min=1)).mean()
    if normalization == "token":
        return (weights * nll_sums).sum() / token_counts.sum().clamp(min=1)
    raise ValueError(f"Unknown SFT normalization '{normalization}'; use one of {SFT_NORMALIZATIONS}.")


@dataclass
class HSDPOLoss:
    """The loss and its parts, for logging."""

    loss: torch.Tensor
    dpo: torch.Tensor
    sft: torch.Tensor


def hsdpo_loss(
    *,
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_token_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    weights: torch.Tensor | None,
    beta: float,
    sft_weight: float,
    sft_normalization: str = "sequence",
) -> HSDPOLoss:
    """The weighted HS-DPO loss for one batch of pairs.

    ``*_logps`` are per-pair sums of answer-token log-probabilities; ``chosen_token_logps`` and ``chosen_mask``
    are the chosen answers' per-token log-probabilities and answer mask (pairs × tokens).
    """
    if weights is None:
        weights = torch.ones_like(chosen_logps)
    weights = weights.to(device=chosen_logps.device, dtype=chosen_logps.dtype)
    per_pair = sigmoid_dpo_losses(chosen_logps - ref_chosen_logps, rejected_logps - ref_rejected_logps, beta)
    dpo = (weights * per_pair).mean()
    if sft_weight:
        nll_sums, counts = chosen_nll(chosen_token_logps, chosen_mask)
        sft = sft_term(nll_sums, counts, weights, sft_normalization)
    else:
        sft = torch.zeros((), device=dpo.device, dtype=dpo.dtype)
    return HSDPOLoss(loss=dpo + sft_weight * sft, dpo=dpo, sft=sft)
