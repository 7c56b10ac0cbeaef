"""Padding-free attention on CUDA without the ``flash-attn`` package.

In a padding-free batch trl concatenates the sequences into one row and passes their boundaries
(``cu_seq_lens_q``/``cu_seq_lens_k``, ``max_length_q``/``max_length_k``). transformers' ``sdpa`` cannot use
them: it builds a dense block-diagonal mask over the whole row and computes every block, so attention cost
grows with the square of the row, not of each sequence. ``flex_attention`` skips the masked blocks but
compiles a kernel per shape. PyTorch (2.10 and later) ships FlashAttention's variable-length kernel as
``torch.nn.attention.varlen.varlen_attn``; this module registers it with transformers under the name
:data:`VARLEN_ATTENTION`, so ``attn_implementation="guardreasoner_varlen"`` trains padding-free at flash
speed. Batches without boundaries (generation, padded evaluation) fall back to ``sdpa``.
"""

from __future__ import annotations

import inspect
from typing import Any

VARLEN_ATTENTION = "guardreasoner_varlen"


def varlen_kernel_available() -> bool:
    """Whether this PyTorch has the variable-length flash kernel and a CUDA device to run it."""
    import torch

    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def _varlen_kernel(query, key, value, cu_seq, max_len: int, scale: float | None):
    """Causal attention over packed sequences; ``query``/``key``/``value`` are (tokens, heads, head_dim)."""
    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    options: dict[str, Any] = {"scale": scale}
    if "window_size" in params:  # PyTorch >= 2.11 spells causal as a (-1, 0) window
        options["window_size"] = (-1, 0)
    else:
        options["is_causal"] = True
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        if "enable_gqa" in params:
            options["enable_gqa"] = True
        else:
            key = key.repeat_interleave(groups, dim=1)
            value = value.repeat_interleave(groups, dim=1)
    return varlen_attn(query, key, value, cu_seq, cu_seq, max_len, max_len, **options)


def varlen_attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: Any = None,
    cu_seq_lens_k: Any = None,
    max_length_q: int | None = None,
    max_length_k: int | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """A transformers attention function: (batch, heads, tokens, head_dim) in, (batch, tokens, heads, head_dim) out."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if cu_seq_lens_q is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if query.shape[0] != 1:
        raise ValueError(
            f"{VARLEN_ATTENTION} expects one packed row (padding-free batches), got a batch of {query.shape[0]} rows."
        )
    if dropout:
        raise ValueError(f"{VARLEN_ATTENTION} has no attention dropout; set attention_dropout=0.")
    if cu_seq_lens_k is not None and not torch.equal(cu_seq_lens_k, cu_seq_lens_q):
        raise ValueError(
            f"{VARLEN_ATTENTION} supports self-attention only (cu_seq_lens_k must equal cu_seq_lens_q)."
        )
    # Under autocast the rotary embedding leaves q and k in float32; the flash kernel takes bf16/fp16 only.
    if torch.is_autocast_enabled(query.device.type):
        dtype = torch.get_autocast_dtype(query.device.type)
    else:
        dtype = value.dtype
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(
            f"{VARLEN_ATTENTION} needs bf16 or fp16 (train with --bf16 or a bf16 model), got {dtype}."
        )
    q, k, v = (t[0].transpose(0, 1).to(dtype) for t in (query, key, value))
    cu_seq = cu_seq_lens_q.to(device=q.device, dtype=torch.int32)
    max_len = int(max_length_q) if max_length_q is not None else int(cu_seq.diff().max())
    out = _varlen_kernel(q, k, v, cu_seq, max_len, scaling)
    return out.unsqueeze(0), None


def register_varlen_attention() -> str:
    """Register :data:`VARLEN_ATTENTION` with transformers (idempotent) and return its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    AttentionInterface.register(VARLEN_ATTENTION, varlen_attention_forward)
    # Like flash attention, it needs no materialized mask: None for padding-free rows.
    AttentionMaskInterface.register(VARLEN_ATTENTION, flash_attention_mask)
    return VARLEN_ATTENTION
