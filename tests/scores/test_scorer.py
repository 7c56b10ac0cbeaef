"""The engine-independent scorer: label tokens, final-block spans, alignment, statuses, the top-k adapter."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from guardreasoner.parsing import parse_output
from guardreasoner.scores import (
    WITHOUT_TOKENIZER,
    LabelChoice,
    LabelLogprobs,
    LabelTokens,
    final_answer_spans,
    from_openai_logprobs,
    score_verdict,
    token_texts,
)
from guardreasoner.testing import guard_output
from guardreasoner.verdict import ScoreStatus


class CharTokenizer:
    """One token per character (id = code point): every label pair shares the lead token ' '."""

    def __call__(self, text: str, add_special_tokens: bool = True):
        return SimpleNamespace(input_ids=[ord(c) for c in text])

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join(map(chr, ids))


class WordTokenizer:
    """Llama-3-like: a space joins the word after it; a few words are split as a BPE vocabulary would."""

    SPLITS = {" unharmful": [" un", "harm", "ful"], " compliance": [" compl", "iance"]}

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def pieces(self, text: str) -> list[str]:
        out, word = [], ""
        for char in text:
            if char in " \n" and word:
                out.append(word)
                word = ""
            if char == "\n":
                out.append("\n")
            else:
                word += char
        if word:
            out.append(word)
        return [p for piece in out for p in self.SPLITS.get(piece, [piece])]

    def __call__(self, text: str, add_special_tokens: bool = True):
        return SimpleNamespace(
            input_ids=[self.vocab.setdefault(p, len(self.vocab)) for p in self.pieces(text)]
        )

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        names = {i: p for p, i in self.vocab.items()}
        return "".join(names[i] for i in ids)


def char_logprobs(text: str, labels: LabelTokens, at: dict[int, dict[str, float]]) -> LabelLogprobs:
    """Character tokens; ``at`` gives the reported candidates at chosen positions (nothing elsewhere)."""
    return LabelLogprobs(tuple(text), tuple(at.get(i, {}) for i in range(len(text))), None, labels)


def test_label_tokens_come_from_the_tokenizer_and_part_where_the_words_differ():
    labels = LabelTokens.from_tokenizer(CharTokenizer())
    spaced = labels.choices[("harmful", " ")]
    assert spaced.shared == (" ",)  # ' harmful' and ' unharmful' share their first token, the space
    assert (spaced.positive, spaced.negative) == ("h", "u")
    assert (spaced.positive_id, spaced.negative_id) == (ord("h"), ord("u"))
    assert labels.choices[("refusal", "")].shared == ()
    assert set(labels.texts.values()) == {"h", "u", "r", "c"}
    assert labels.top_k == 4

    words = LabelTokens.from_tokenizer(WordTokenizer())
    assert (words.choices[("harmful", " ")].positive, words.choices[("harmful", " ")].negative) == (
        " harmful",
        " un",
    )
    assert words.choices[("refusal", " ")].negative == " compl"


def test_final_answer_spans_read_the_last_block_and_point_at_the_word():
    text = "# Answers: Request: unharmful\nreasoning\n\nAnswers: \nRequest: harmful\nCompletion: None\nResponse: Unharmful\n"
    spans = final_answer_spans(text)
    assert spans["prompt_harmfulness"].label == "harmful"
    assert text[spans["prompt_harmfulness"].start :].startswith("harmful\nCompletion")
    assert text[spans["response_harmfulness"].start :].startswith("Unharmful")
    assert "response_refusal" not in spans
    assert final_answer_spans("no answers here: Request: harmful") == {}


def test_score_is_the_renormalised_probability_at_the_label_position():
    text = guard_output("harmful", "refusal", "unharmful")
    verdict = parse_output(text, has_response=True)
    labels = LabelTokens.from_tokenizer(CharTokenizer())
    spans = final_answer_spans(text)
    at = {
        spans["prompt_harmfulness"].start: {"h": math.log(0.6), "u": math.log(0.2)},
        spans["response_refusal"].start: {"r": math.log(0.9), "c": math.log(0.05)},
        spans["response_harmfulness"].start: {"h": math.log(0.1), "u": math.log(0.7)},
    }
    scored = score_verdict(verdict, char_logprobs(text, labels, at), has_response=True)
    assert scored.prompt_harmfulness_score == pytest.approx(0.75)
    assert scored.response_refusal_score == pytest.approx(0.9 / 0.95)
    assert scored.response_harmfulness_score == pytest.approx(0.125)
    assert scored.score_status == {}


def test_labels_sharing_a_first_token_are_scored_where_they_differ():
    # A hand-built table in which both labels begin with the token 'ha' and part at the next one.
    choice = LabelChoice("harmful", "unharmful", "", ("ha",), "rmful", "x", 1, 2)
    labels = LabelTokens({("harmful", ""): choice}, {1: "rmful", 2: "x"})
    text = "Answers: \nRequest: harmful\n"
    tokens = ("Answers: \nRequest: ", "ha", "rmful", "\n")
    logprobs = LabelLogprobs(tokens, ({}, {}, {"rmful": math.log(0.8), "x": math.log(0.2)}, {}), None, labels)
    scored = score_verdict(parse_output(text, has_response=False), logprobs, has_response=False)
    assert scored.prompt_harmfulness_score == pytest.approx(0.8)


def test_missing_scores_say_why():
    labels = LabelTokens.from_tokenizer(CharTokenizer())
    text = guard_output("harmful", "compliance", "harmful")
    verdict = parse_output(text, has_response=True)
    status = score_verdict(verdict, None, has_response=True).score_status
    assert set(status.values()) == {ScoreStatus.NO_LOGPROBS}
    no_tokenizer = score_verdict(verdict, WITHOUT_TOKENIZER, has_response=True).score_status
    assert no_tokenizer["prompt_harmfulness"] is ScoreStatus.NO_TOKENIZER
    # A request alone: the response tasks get no status at all; a label not read is no_label.
    unread = parse_output("I will not answer.", has_response=False)
    assert score_verdict(unread, None, has_response=False).score_status == {
        "prompt_harmfulness": ScoreStatus.NO_LABEL
    }
    # The label word is split across tokens differently from the tokenizer's spelling.
    split = list(text)
    where = final_answer_spans(text)["prompt_harmfulness"].start
    split[where - 1 : where + 1] = [" h"]  # ' h' is one token here, not ' ' then 'h'
    bad = LabelLogprobs(tuple(split), tuple({"h": 0.0, "u": -1.0} for _ in split), None, labels)
    assert score_verdict(verdict, bad, has_response=True).score_status["prompt_harmfulness"] is (
        ScoreStatus.NOT_AT_TOKEN_BOUNDARY
    )
    # Tokens that do not spell the output's tail cannot be placed.
    shifted = LabelLogprobs(tuple(text[:-1] + "!"), tuple({} for _ in text), None, labels)
    assert score_verdict(verdict, shifted, has_response=True).score_status["response_harmfulness"] is (
        ScoreStatus.NOT_AT_TOKEN_BOUNDARY
    )


def test_a_label_recovered_from_the_reasoning_or_not_in_the_final_block_has_no_score():
    labels = LabelTokens.from_tokenizer(CharTokenizer())
    recovered = (
        "# Task 1\n\n## Reasoning Step 1: It is bad.\n\n# Answers: \nRequest: harmful\n\n"
        "# Task 2\n\n## Reasoning Step 1: Nothing to judge.\n\n---\n\n"
        "Answers: \nRequest: None\nCompletion: None\nResponse: None\n"
    )
    verdict = parse_output(recovered, has_response=False)
    assert verdict.recovered_fields == ["prompt_harmfulness"]
    full = LabelLogprobs(tuple(recovered), tuple({"h": 0.0, "u": -1.0} for _ in recovered), None, labels)
    assert score_verdict(verdict, full, has_response=False).score_status == {
        "prompt_harmfulness": ScoreStatus.RECOVERED
    }
    # The parser reads a label that no line after the last Answers heading states (a label zone without one).
    zone = "The request is harmful.\n\nRequest: harmful\n"
    verdict = parse_output(zone, has_response=False)
    assert verdict.prompt_harmfulness == "harmful"
    full = LabelLogprobs(tuple(zone), tuple({"h": 0.0, "u": -1.0} for _ in zone), None, labels)
    assert score_verdict(verdict, full, has_response=False).score_status == {
        "prompt_harmfulness": ScoreStatus.NOT_LOCATED
    }


def test_token_texts_concatenate_to_the_decoded_text_across_multibyte_characters(trained_guard_dir):
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(trained_guard_dir)
    for text in ("Request: harmful 😀 naïve – 東京\n", "ab\u00e9\u00e9\U0001f600x", "😀😀"):
        ids = tokenizer(text, add_special_tokens=False).input_ids
        pieces = token_texts(ids, lambda part: tokenizer.decode(part, skip_special_tokens=True))
        assert len(pieces) == len(ids)
        assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True) == text
        assert "\ufffd" not in "".join(pieces)


# -- the top-k adapters ------------------------------------------------------------------------------------


def openai_logprobs(text: str, tokenizer: WordTokenizer, tops: dict[int, dict[str, float]]) -> dict:
    """A Completions choice's ``logprobs`` as a server returns them for ``logprobs=k``: per token, its top-k."""
    pieces = tokenizer.pieces(text)
    rows = [{**tops.get(position, {})} for position in range(len(pieces))]
    for row, piece in zip(rows, pieces):
        row.setdefault(piece, 0.0)
    return {"tokens": pieces, "token_logprobs": [0.0] * len(pieces), "top_logprobs": rows}


def test_top_k_adapter_scores_and_bounds_a_label_outside_the_top_k():
    tokenizer = WordTokenizer()
    labels = LabelTokens.from_tokenizer(tokenizer)
    text = "Answers: \nRequest: harmful\nCompletion: refusal\nResponse: unharmful\n"
    pieces = tokenizer.pieces(text)
    request, completion, response = (pieces.index(" harmful"), pieces.index(" refusal"), pieces.index(" un"))
    tops = {
        request: {" harmful": math.log(0.7), " un": math.log(0.2), " Harm": math.log(0.05)},
        completion: {" refusal": math.log(0.9), " Ref": math.log(0.06), " no": math.log(0.03)},
        response: {" un": math.log(0.5), " harmful": math.log(0.3), "x": math.log(0.1)},
    }
    logprobs = from_openai_logprobs(openai_logprobs(text, tokenizer, tops), text, labels, top_k=3)
    assert "".join(logprobs.tokens) == text
    scored = score_verdict(parse_output(text, has_response=True), logprobs, has_response=True)
    assert scored.prompt_harmfulness_score == pytest.approx(0.7 / 0.9)
    assert scored.response_harmfulness_score == pytest.approx(0.3 / 0.8)
    # ' compl' is not in the top 3: its probability is at most min(0.03, 1 - 0.99) = 0.01.
    assert scored.response_refusal_score == pytest.approx(0.9 / 0.91)
    assert scored.score_status == {"response_refusal": ScoreStatus.TOP_K_BOUND}


def test_top_k_adapter_drops_a_spelled_stop_token():
    tokenizer = WordTokenizer()
    labels = LabelTokens.from_tokenizer(tokenizer)
    text = "Answers: \nRequest: harmful\n"
    logprobs = from_openai_logprobs(
        openai_logprobs(text + "<|eot_id|>", tokenizer, {}), text, labels, top_k=2
    )
    assert "".join(logprobs.tokens) == text and len(logprobs.logprobs) == len(logprobs.tokens)


def test_openai_adapter_reads_completions_logprobs_and_none_when_the_server_ignores_them():
    tokenizer = WordTokenizer()
    labels = LabelTokens.from_tokenizer(tokenizer)
    text = "Answers: \nRequest: unharmful\n"
    pieces = tokenizer.pieces(text)
    at = pieces.index(" un")
    tops = [{piece: 0.0} for piece in pieces]
    tops[at] = {" un": math.log(0.6), " harmful": math.log(0.3)}
    wire = {"tokens": pieces, "token_logprobs": [0.0] * len(pieces), "top_logprobs": tops, "text_offset": []}
    logprobs = from_openai_logprobs(wire, text, labels, top_k=2)
    scored = score_verdict(parse_output(text, has_response=False), logprobs, has_response=False)
    assert scored.prompt_harmfulness_score == pytest.approx(1 / 3)
    assert scored.score_status == {}
    # As an openai SDK object, too.
    assert list(from_openai_logprobs(SimpleNamespace(**wire), text, labels, 2).logprobs) == list(
        logprobs.logprobs
    )
    assert from_openai_logprobs(None, text, labels, 2) is None
    assert from_openai_logprobs({"tokens": pieces, "top_logprobs": None}, text, labels, 2) is None
    unscored = score_verdict(parse_output(text, has_response=False), None, has_response=False)
    assert unscored.prompt_harmfulness_score is None
    assert unscored.score_status == {"prompt_harmfulness": ScoreStatus.NO_LOGPROBS}
    without = from_openai_logprobs(wire, text, None, 2)
    assert score_verdict(
        parse_output(text, has_response=False), without, has_response=False
    ).score_status == {"prompt_harmfulness": ScoreStatus.NO_TOKENIZER}
