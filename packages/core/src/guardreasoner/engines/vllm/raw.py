"""vLLM's own ``RequestOutput`` objects (token ids, finish reasons) from a :class:`VLLMEngine`.

For parity checks and benchmarks that compare tokens, not verdicts (``tests/gpu``, ``benchmarks/gpu``); the
guard uses :meth:`VLLMEngine.generate`. The prompts are fed exactly as the engine feeds them.
"""

from __future__ import annotations

from typing import Any

from guardreasoner.engines.base import GenerationConfig
from guardreasoner.engines.vllm.engine import VLLMEngine
from guardreasoner.engines.vllm.outputs import to_generation

__all__ = ["arequest_outputs", "request_outputs", "to_generation", "token_prompts"]


def token_prompts(engine: VLLMEngine, prompts: list[str]) -> list[dict[str, list[int]]]:
    """The ``TokensPrompt`` each prompt is fed as; raises ``ContextLengthError`` if one cannot fit."""
    return engine._token_prompts(prompts)


def request_outputs(engine: VLLMEngine, prompts: list[str], config: GenerationConfig) -> list[Any]:
    """The batch's ``RequestOutput`` objects, in order."""
    return engine._outputs(prompts, config)


async def arequest_outputs(engine: VLLMEngine, prompts: list[str], config: GenerationConfig) -> list[Any]:
    """Async :func:`request_outputs`: the requests join whatever the engine is running."""
    return await engine._aoutputs(prompts, config)
