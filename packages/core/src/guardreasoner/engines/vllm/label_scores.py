"""Label scores on vLLM: the candidates' log-probabilities asked for at the label positions, after generating.

vLLM (0.26, and 0.34 alike) computes and ships log-probabilities for every generated token of a request that
asks for any, and its frontend turns each into Python objects: 512 stand-in verdicts at once ran at 0.13x the
throughput with a top-20 and at 0.25x with only the label candidates (``logprob_token_ids``), against none
(``benchmarks/results/vllm_perf_2026-11-30.md``, vLLM 0.26). A score needs them at a few positions only: the labels of
the final answer block. So the engine generates without them, finds those positions in the text
(:func:`guardreasoner.scores.label_positions`, on the output's last tokens), and sends one more request per
position: the prompt and the output up to the label, one token, ``logprob_token_ids`` = the candidates.
vLLM's prefix cache holds all but the last partial block of that context, so each costs a few tokens of
prefill, not a second pass over the text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from guardreasoner.scores import (
    LabelLogprobs,
    LabelTokens,
    final_answer_spans,
    from_positions,
    label_positions,
    token_texts,
)

TAILS = (24, 96)
"""How many of an output's last tokens are decoded to find its labels, in turn, before all of them. An answer
block is about 16 tokens: 24 held every label of 512 released outputs tried, and decoding them took half the
CPU time 48 did (0.72 against 1.40 s for the 512, on a busy two-core machine), on the path after generation."""


@dataclass(frozen=True)
class LabelQuery:
    """One output's last tokens and where its labels are among them."""

    output: int
    """The output's index in the batch."""
    tokens: tuple[str, ...]
    """The texts of the output's last tokens; together they spell its end."""
    offset: int
    """The index in the output's token ids of ``tokens[0]``."""
    positions: tuple[int, ...]
    """Indices in ``tokens`` of the tokens that decide the labels."""


def plan(outputs: Sequence[Any], decode: Callable[[list[int]], str], labels: LabelTokens) -> list[LabelQuery]:
    """A query for every output that is not a failure (its labels, if any are found)."""
    queries = []
    for index, output in enumerate(outputs):
        if isinstance(output, BaseException) or not output.outputs:
            continue
        first = output.outputs[0]
        ids = list(first.token_ids)
        spans = final_answer_spans(first.text)
        for size in (*TAILS, len(ids)):
            tail = ids[-size:] if 0 < size < len(ids) else ids
            tokens = token_texts(tail, decode)
            found = label_positions(first.text, tokens, labels, spans)
            positions = sorted({at for at in found.values() if at is not None})
            if len(positions) == len(spans) or len(tail) == len(ids):
                break
        queries.append(LabelQuery(index, tuple(tokens), len(ids) - len(tail), tuple(positions)))
    return queries


def requests(outputs: Sequence[Any], queries: list[LabelQuery]) -> list[dict[str, list[int]]]:
    """One token prompt per label position: the output's prompt and its tokens before the label."""
    prompts = []
    for query in queries:
        output = outputs[query.output]
        ids = list(output.outputs[0].token_ids)
        for position in query.positions:
            prompts.append({"prompt_token_ids": [*output.prompt_token_ids, *ids[: query.offset + position]]})
    return prompts


def label_logprobs(
    count: int, queries: list[LabelQuery], answers: Sequence[Any], labels: LabelTokens
) -> list[LabelLogprobs | None]:
    """Per output of the batch, what scoring needs (None for a failed output); ``answers`` are the requests'
    results in order, a failed one's exception in its place (its label then has no score)."""
    found: list[LabelLogprobs | None] = [None] * count
    answers = iter(answers)
    for query in queries:
        rows = {}
        for position in query.positions:
            answer = next(answers)
            if isinstance(answer, BaseException) or not answer.outputs or not answer.outputs[0].logprobs:
                continue
            rows[position] = _candidates(answer.outputs[0].logprobs[0], labels)
        found[query.output] = from_positions(query.tokens, rows, labels)
    return found


def generated_logprobs(
    output: Any, decode: Callable[[list[int]], str], labels: LabelTokens
) -> LabelLogprobs | None:
    """What scoring needs from a short request that asked for the candidates at each of its tokens (a forced
    answer, ``VLLMEngine.force_answers``); None when vLLM returned none."""
    first = output.outputs[0] if output.outputs else None
    if first is None or not first.logprobs:
        return None
    rows = {i: _candidates(step, labels) for i, step in enumerate(first.logprobs)}
    return from_positions(token_texts(list(first.token_ids), decode), rows, labels)


def _candidates(step: Any, labels: LabelTokens) -> dict[str, float]:
    """One position's ``{candidate text: log-probability}`` from vLLM's ``{token id: Logprob}``."""
    return {labels.texts[t]: e.logprob for t, e in step.items() if t in labels.texts}
