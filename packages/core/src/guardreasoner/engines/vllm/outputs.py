"""What both vLLM backends share: request ids, final-only outputs, settling futures, and the conversion of
vLLM's ``RequestOutput`` to a :class:`~guardreasoner.engines.base.Generation`."""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
from types import SimpleNamespace
from typing import Any

from guardreasoner.engines.base import Generation
from guardreasoner.errors import EngineError
from guardreasoner.scores import LabelLogprobs

_FINISH_REASONS = {"stop": "stop", "length": "length"}
_ids = itertools.count()


def request_id() -> str:
    """A request id unique in this process (vLLM needs one per request)."""
    return f"guardreasoner-{next(_ids)}"


def to_generation(output: Any, label_logprobs: LabelLogprobs | None = None) -> Generation:
    """A vLLM ``RequestOutput`` as a :class:`Generation` (finish reasons ``stop`` / ``length`` only), with what
    scoring needs when the engine asked for it (``label_scores.py``)."""
    completions = list(output.outputs)
    if not completions:
        raise EngineError(f"vLLM returned no completion for request {output.request_id}.")
    first = completions[0]
    reason = _FINISH_REASONS.get(first.finish_reason)
    if reason is None:
        raise EngineError(
            f"vLLM ended request {output.request_id} with finish reason {first.finish_reason!r} "
            f"(stop reason {getattr(first, 'stop_reason', None)!r})."
        )
    prompt_ids = getattr(output, "prompt_token_ids", None)
    return Generation(
        text=first.text,
        finish_reason=reason,
        num_generated_tokens=len(first.token_ids),
        num_prompt_tokens=len(prompt_ids) if prompt_ids is not None else None,
        samples=tuple(c.text for c in completions) if len(completions) > 1 else (),
        label_logprobs=label_logprobs,
        forced_answer=getattr(output, "forced_answer", False),
    )


def with_forced_answer(output: Any, answer: Any, opening_ids: list[int], opening_texts: list[str]) -> Any:
    """A runaway's ``RequestOutput`` and its forced answer's as one: its tokens, the answer opening's, then the
    answer's; marked ``forced_answer``."""
    first, second = output.outputs[0], answer.outputs[0]
    completion = SimpleNamespace(
        text=first.text + "".join(opening_texts) + second.text,
        token_ids=[*first.token_ids, *opening_ids, *second.token_ids],
        finish_reason=second.finish_reason,
        stop_reason=getattr(second, "stop_reason", None),
    )
    return SimpleNamespace(
        request_id=output.request_id,
        finished=True,
        prompt_token_ids=output.prompt_token_ids,
        outputs=[completion],
        forced_answer=True,
    )


def to_generation_or_failure(result: Any, label_logprobs: LabelLogprobs | None = None) -> Generation:
    """A request's output, or the exception it failed with, as a :class:`Generation` (failed if it did)."""
    if isinstance(result, BaseException):
        if isinstance(result, EngineError):
            return Generation.failed(result)
        error = EngineError(f"vLLM request failed: {type(result).__name__}: {result}")
        error.__cause__ = result
        return Generation.failed(error)
    try:
        return to_generation(result, label_logprobs)
    except EngineError as error:
        return Generation.failed(error)


def outcomes(
    futures: list[concurrent.futures.Future], *, each: bool, pending: set[concurrent.futures.Future]
) -> list[Any]:
    """The futures' results in order; with ``each`` a failed one's exception in its place, else the first
    failure raised. Raises :class:`TimeoutError` if any is still ``pending``."""
    if not each:
        for future in futures:
            if future.done() and future.exception() is not None:
                raise future.exception()
    if pending:
        raise TimeoutError
    if not each:
        return [future.result() for future in futures]
    return [future.exception() or future.result() for future in futures]


def settle(
    future: concurrent.futures.Future, *, result: Any = None, error: BaseException | None = None
) -> None:
    """Resolve ``future`` unless its caller already cancelled it."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def final_only(params: Any) -> Any:
    """One output per request, when it finishes (no per-token streaming objects)."""
    from vllm.sampling_params import RequestOutputKind

    params = params.clone()
    params.output_kind = RequestOutputKind.FINAL_ONLY
    return params
