"""Verdict scores: the probability the model puts on each task's positive label, read where it answers.

A task's score is the model's probability of ``harmful`` (or ``refusal``) at the label of the final
``Answers:`` block, after its own reasoning, renormalised over the two labels: ``p(pos) / (p(pos) + p(neg))``
at the first token where the two label words differ (``Request: harmful`` against ``Request: unharmful``).
Which tokens those are comes from the tokenizer (:class:`LabelTokens`), never from hard-coded ids.

Engines report what scoring needs in one engine-independent form, :class:`LabelLogprobs`: the text of each
generated token and, per position, the log-probabilities of the label candidate tokens. The ``hf`` engine
gathers them from the logits it computes anyway; vLLM asks for exactly the candidates at the label
positions after generating (``engines/vllm/label_scores.py``, :func:`label_positions`, :func:`from_positions`);
OpenAI-compatible servers report a top-k per position (the Completions API's ``logprobs=k``), which
:func:`from_openai_logprobs` converts. A candidate outside a top-k gets the upper bound the top-k implies, and
the verdict says the score is a bound (:attr:`~guardreasoner.verdict.ScoreStatus.TOP_K_BOUND`).

Only the label positions are ever read, so a top-k report is kept as the server gave it and a position is
converted when it is read (:class:`PerPosition`): converting all ~270 positions of every verdict cost more
CPU than parsing it.

Everything here is pure Python: no ML framework is imported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guardreasoner.tasks import Task
from guardreasoner.verdict import ScoreStatus, Verdict

LEADS = ("", " ")
"""The text a label word's first token may carry before the word: nothing, or the space after the colon."""

TASKS = {task.verdict_field: task for task in Task}
"""Label field -> its task (answer key, positive and negative labels)."""

SCORE_FIELDS = {field: f"{field}_score" for field in TASKS}
"""Label field -> the verdict field holding its score."""
_RESPONSE_FIELDS = ("response_refusal", "response_harmfulness")
ENGINE_SCORE_GAPS = {
    ScoreStatus.NO_LOGPROBS: "the engine or its server returns no log-probabilities (transformers serve "
    "ignores the request, vllm serve returns them; the vllm engine asks for none with scores=False)",
    ScoreStatus.NO_TOKENIZER: "the engine has no tokenizer to find the label words' tokens (the openai "
    "engine: pass tokenizer=, the served model's)",
}
"""The reasons for a missing score that lie with the engine rather than with one output, and what to do."""
_ANSWERS = re.compile(r"Answers[ \t]*:|^[ \t]*#+[ \t]*Answers[ \t]*$", re.IGNORECASE | re.MULTILINE)


# -- which tokens decide a label ----------------------------------------------------------------------


@dataclass(frozen=True)
class LabelChoice:
    """Where a task's two labels part in the token stream, for one ``lead`` before the word."""

    positive_label: str
    negative_label: str
    lead: str
    shared: tuple[str, ...]
    """The texts of the tokens both labels begin with (usually none)."""
    positive: str
    """The text of the positive label's first token after ``shared``."""
    negative: str
    positive_id: int
    negative_id: int


@dataclass(frozen=True)
class LabelTokens:
    """The label candidates of a tokenizer: per label pair and lead, where the two labels part."""

    choices: Mapping[tuple[str, str], LabelChoice]
    """``(positive label, lead)`` -> the choice."""
    texts: Mapping[int, str]
    """Every candidate token id -> its text."""

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> LabelTokens:
        """Tokenize ``lead + label`` for both labels of each pair and find their first differing tokens."""

        def decode(ids: list[int]) -> str:
            return tokenizer.decode(ids, skip_special_tokens=True)

        choices, texts = {}, {}
        pairs = dict.fromkeys((task.positive, task.negative) for task in TASKS.values())
        for positive, negative in pairs:
            for lead in LEADS:
                pos_ids = list(tokenizer(lead + positive, add_special_tokens=False).input_ids)
                neg_ids = list(tokenizer(lead + negative, add_special_tokens=False).input_ids)
                at = next((i for i, (a, b) in enumerate(zip(pos_ids, neg_ids)) if a != b), None)
                if at is None:
                    raise ValueError(
                        f"The tokenizer spells {lead + positive!r} and {lead + negative!r} so that one is a prefix "
                        "of the other; no token decides between them, so verdicts cannot be scored."
                    )
                pos_texts, neg_texts = token_texts(pos_ids, decode), token_texts(neg_ids, decode)
                choice = LabelChoice(
                    positive, negative, lead, tuple(pos_texts[:at]), pos_texts[at], neg_texts[at],
                    pos_ids[at], neg_ids[at],
                )  # fmt: skip
                choices[(positive, lead)] = choice
                texts[choice.positive_id], texts[choice.negative_id] = choice.positive, choice.negative
        if len(set(texts.values())) < len(texts):
            raise ValueError(f"Two label candidate tokens decode to the same text ({texts}); cannot score.")
        return cls(choices, texts)

    @property
    def candidate_ids(self) -> tuple[int, ...]:
        """The token ids whose log-probabilities an engine must report at every position."""
        return tuple(sorted(self.texts))

    @property
    def top_k(self) -> int:
        """The smallest top-k that can hold every candidate at once: a top-k engine's ``logprobs=`` setting."""
        return len(self.texts)


def token_texts(ids: Sequence[int], decode: Callable[[list[int]], str], context: int = 4) -> list[str]:
    """Each token's share of ``decode(ids)``, in order, so that they concatenate to it.

    Decodes a few tokens at a time (linear time). A token that ends inside a multi-byte character gets ``""``
    and the character goes to the token that completes it.
    """
    pieces: list[str] = []
    start = 0  # the first token whose text is not yet out
    for end in range(1, len(ids) + 1):
        left = max(0, start - context)
        before = decode(list(ids[left:start]))
        now = decode(list(ids[left:end]))
        if now.endswith("\ufffd") and end < len(ids):
            pieces.append("")
            continue
        pieces.append(now[len(before) :] if now.startswith(before) else now)
        start = end
    return pieces


# -- what an engine reports -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelLogprobs:
    """What scoring needs from one generation, in a form every engine can fill."""

    tokens: tuple[str, ...]
    """Each generated token's text; together they spell the output (a trailing stop token may spell nothing)."""
    logprobs: Sequence[Mapping[str, float]]
    """Per position, the log-probability of each label candidate the engine reported, keyed by token text."""
    bounds: Sequence[float] | None = None
    """Top-k engines: per position, an upper bound on any unreported candidate. None: all are reported."""
    labels: LabelTokens | None = None
    """The candidates; None when the engine has no tokenizer to find them."""


WITHOUT_TOKENIZER = LabelLogprobs((), (), None, None)
"""What an engine with no tokenizer reports: it cannot tell which tokens are the labels'."""


def from_logprob_rows(
    tokens: Sequence[str], rows: Sequence[Sequence[float]], labels: LabelTokens
) -> LabelLogprobs:
    """From an engine that computes every candidate (``hf``): ``rows[i][j]`` is the log-probability of
    ``labels.candidate_ids[j]`` at position ``i``."""
    names = [labels.texts[i] for i in labels.candidate_ids]
    return LabelLogprobs(tuple(tokens), tuple(dict(zip(names, row)) for row in rows), None, labels)


class PerPosition(Sequence):
    """``convert(raw[i])`` for each position, computed when read (scoring reads a few label positions)."""

    def __init__(self, raw: Sequence[Any], convert: Callable[[Any], Any]):
        self._raw, self._convert = raw, convert

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return PerPosition(self._raw[index], self._convert)
        return self._convert(self._raw[index])


def from_openai_logprobs(
    logprobs: Any, text: str, labels: LabelTokens | None, top_k: int
) -> LabelLogprobs | None:
    """From the ``logprobs`` of a Completions API choice requested with ``logprobs=top_k``.

    It holds ``tokens`` (each token's text) and ``top_logprobs`` (per token, ``{token text: logprob}``).
    None when the server returned none (``transformers serve`` ignores the field).
    """
    tokens = _get(logprobs, "tokens")
    tops = _get(logprobs, "top_logprobs")
    if not tokens or not tops or len(tops) != len(tokens) or any(top is None for top in tops):
        return None
    if labels is None:
        return _trimmed(text, list(tokens), [], [], None)
    names = set(labels.texts.values())

    def row(top: Mapping[str, float]) -> dict[str, float]:
        return {token: lp for token, lp in dict(top).items() if token in names}

    def bound(top: Mapping[str, float]) -> float:
        return _unlisted_bound(list(dict(top).values()), top_k)

    return _trimmed(text, list(tokens), PerPosition(tops, row), PerPosition(tops, bound), labels)


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _unlisted_bound(values: list[float], top_k: int) -> float:
    """The most an unlisted token can have: the k-th listed log-probability, and what the listed leave over."""
    top = sorted(values, reverse=True)[:top_k]
    left = 1.0 - sum(math.exp(v) for v in top)
    bound = math.log(left) if left > 0 else -math.inf
    return min(bound, top[-1]) if len(top) >= top_k else bound


def _trimmed(
    text: str,
    tokens: list[str],
    rows: Sequence[Mapping[str, float]],
    bounds: Sequence[float],
    labels: LabelTokens | None,
) -> LabelLogprobs:
    """Drop a trailing stop token whose name the engine spelled although the text omits it."""
    total = sum(map(len, tokens))
    while tokens and total > len(text) and not text.endswith(tokens[-1]):
        total -= len(tokens.pop())
    keep = len(tokens)
    if labels is None:
        return LabelLogprobs(tuple(tokens), (), None, None)
    return LabelLogprobs(tuple(tokens), rows[:keep], bounds[:keep], labels)


# -- where the labels are -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSpan:
    label: str
    """Lower-cased."""
    start: int
    """Where the label word starts in the output."""


def final_answer_spans(text: str) -> dict[str, LabelSpan]:
    """Per label field, the first label its line states after the output's last ``Answers`` heading.

    Linear time; independent of the parser, so that scores point at the text the parser reads: a label is
    scored only where this span states the verdict's label.
    """
    heading = None
    for heading in _ANSWERS.finditer(text):  # noqa: B007 (the last one is wanted)
        pass
    if heading is None:
        return {}
    spans = {}
    for field, task in TASKS.items():
        pattern = rf"{task.answer_key}[ \t]*:\s*({task.positive}|{task.negative})\b"
        match = re.compile(pattern, re.IGNORECASE).search(text, heading.end())
        if match:
            spans[field] = LabelSpan(match.group(1).lower(), match.start(1))
    return spans


def label_positions(
    text: str, tokens: Sequence[str], labels: LabelTokens, spans: Mapping[str, LabelSpan] | None = None
) -> dict[str, int | None]:
    """Per label field the final answer block states, the index in ``tokens`` of the token that decides it
    (None where the tokens do not reach it or it is not at a token boundary). ``tokens`` spell the end of
    ``text``: an engine can pass only an output's last tokens."""
    spans = final_answer_spans(text) if spans is None else spans
    found = {}
    for field, span in spans.items():
        at = _label_position(text, tokens, span, labels, TASKS[field].positive)
        found[field] = None if at is None else at[0]
    return found


def from_positions(
    tokens: Sequence[str], rows: Mapping[int, Mapping[str, float]], labels: LabelTokens
) -> LabelLogprobs:
    """From an engine that asked for the candidates only where the labels are: ``rows[i]`` for position ``i``
    of ``tokens`` (the output's last tokens), nothing reported elsewhere."""
    return LabelLogprobs(
        tuple(tokens), PerPosition(range(len(tokens)), lambda i: rows.get(i, {})), None, labels
    )


# -- scoring ----------------------------------------------------------------------------------------------


def score_verdict(verdict: Verdict, logprobs: LabelLogprobs | None, *, has_response: bool) -> Verdict:
    """The verdict with a score (or the reason for none) for each task the conversation needs."""
    fields = ["prompt_harmfulness", *(_RESPONSE_FIELDS if has_response else ())]
    spans = final_answer_spans(verdict.raw_output) if logprobs is not None else {}
    update: dict[str, Any] = {}
    status: dict[str, ScoreStatus] = {}
    for field in fields:
        score, why = _score_field(verdict, field, logprobs, spans)
        if score is not None:
            update[SCORE_FIELDS[field]] = score
        if why is not None:
            status[field] = why
    return verdict.model_copy(update={**update, "score_status": status})


def verdict_scores(verdict: Verdict) -> dict[str, float]:
    """``{label field: score}`` for the scores the verdict has (what prediction records store as ``scores``)."""
    return {
        field: score for field, name in SCORE_FIELDS.items() if (score := getattr(verdict, name)) is not None
    }


def _score_field(
    verdict: Verdict, field: str, logprobs: LabelLogprobs | None, spans: dict[str, LabelSpan]
) -> tuple[float | None, ScoreStatus | None]:
    label = getattr(verdict, field)
    if label is None:
        return None, ScoreStatus.NO_LABEL
    if field in verdict.recovered_fields:
        return None, ScoreStatus.RECOVERED
    if logprobs is None:
        return None, ScoreStatus.NO_LOGPROBS
    if logprobs.labels is None:
        return None, ScoreStatus.NO_TOKENIZER
    span = spans.get(field)
    if span is None or span.label != label:
        return None, ScoreStatus.NOT_LOCATED
    task = TASKS[field]
    found = _label_position(verdict.raw_output, logprobs.tokens, span, logprobs.labels, task.positive)
    if found is None:
        return None, ScoreStatus.NOT_AT_TOKEN_BOUNDARY
    position, choice = found
    reported = logprobs.logprobs[position]
    chosen, other = (
        (choice.positive, choice.negative) if label == task.positive else (choice.negative, choice.positive)
    )
    if chosen not in reported:
        return None, ScoreStatus.NO_LOGPROBS
    why = None
    if other in reported:
        other_logprob = reported[other]
    elif logprobs.bounds is not None:
        other_logprob = logprobs.bounds[position]
        why = ScoreStatus.TOP_K_BOUND if other_logprob > -math.inf else None  # -inf: the top-k holds it all
    else:
        return None, ScoreStatus.NO_LOGPROBS
    pos, neg = (
        (reported[chosen], other_logprob) if chosen == choice.positive else (other_logprob, reported[chosen])
    )
    if pos == neg == -math.inf:
        return None, ScoreStatus.NO_LOGPROBS
    return _sigmoid(pos - neg), why


def _label_position(
    text: str, tokens: Sequence[str], span: LabelSpan, labels: LabelTokens, positive: str
) -> tuple[int, LabelChoice] | None:
    """The position whose token decides between the two labels at ``span``, checked against the tokens.

    Token offsets are measured from the end of the output, and the tokens from the label on must spell the
    output's tail exactly, so a difference earlier in the text (decoding clean-up) cannot misplace them.
    """
    start = len(text) - sum(map(len, tokens))
    index = None
    for i, token in enumerate(tokens):
        if start <= span.start < start + len(token):
            index = i
            break
        start += len(token)
    if index is None or start < 0 or text[start:] != "".join(tokens[index:]):
        return None
    choice = labels.choices.get((positive, text[start : span.start]))
    if choice is None:
        return None
    position = index + len(choice.shared)
    expected = choice.positive if span.label == positive else choice.negative
    if (
        position >= len(tokens)
        or tuple(tokens[index:position]) != choice.shared
        or tokens[position] != expected
    ):
        return None
    return position, choice


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
