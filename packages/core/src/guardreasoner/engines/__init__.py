"""Inference engines. Each imports its framework only when constructed."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from guardreasoner.engines.base import Engine, Generation, GenerationConfig
from guardreasoner.errors import EngineLoadError, GuardReasonerError
from guardreasoner.model_source import ModelSource, resolve_model

ENGINE_KINDS = ("auto", "hf", "vllm", "openai")

__all__ = ["ENGINE_KINDS", "Engine", "Generation", "GenerationConfig", "create_engine", "pick_auto_engine"]


def pick_auto_engine() -> str:
    """vLLM when it is installed and a CUDA device is present, else transformers."""
    if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("torch") is None:
        return "hf"
    import torch

    return "vllm" if torch.cuda.is_available() else "hf"


def create_engine(kind: str, model: str | ModelSource, **options: Any) -> Engine:
    """Build an engine of ``kind`` for ``model`` (a hub id, a local directory, or a resolved source).

    For ``openai`` the model is the server's model name and nothing is loaded locally; pass
    ``prompt_format="chat"`` if the served model was trained with a chat template.
    """
    if kind not in ENGINE_KINDS:
        raise ValueError(f"Unknown engine '{kind}'; choose one of {', '.join(ENGINE_KINDS)}.")
    if kind == "auto":
        kind = pick_auto_engine()
    if kind == "openai":
        from guardreasoner.engines.openai import OpenAIEngine

        name = model.model_id if isinstance(model, ModelSource) else str(model)
        return _built(kind, name, lambda: OpenAIEngine(model=name, **options))
    source = model if isinstance(model, ModelSource) else resolve_model(model)
    options.setdefault("prompt_format", source.prompt_format)
    if kind == "hf":
        from guardreasoner.engines.hf import HFEngine

        return _built(kind, source.path, lambda: HFEngine(source.path, **options))
    from guardreasoner.engines.vllm import VLLMEngine

    return _built(kind, source.path, lambda: VLLMEngine(source.path, **options))


def _built(kind: str, model: object, build: Callable[[], Engine]) -> Engine:
    """Build the engine; a failure to build or load (bad option, broken model files) raises once, typed."""
    try:
        return build()
    except GuardReasonerError:
        raise
    except Exception as exc:
        raise EngineLoadError(
            f"The {kind} engine could not be built for {model}: {type(exc).__name__}: {exc}. Check the model "
            "path and the engine options; nothing was classified."
        ) from exc
