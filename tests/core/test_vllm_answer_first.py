"""Answer-first on the vllm engine, over the fake vLLM of ``test_vllm_engine_fake_vllm.py``: the forced answer
is one short request on the prompt's ids and the opening's, carrying its own label log-probabilities; the
reasoning pass of ``auto`` sends the same prompt ids (vLLM's prefix cache, on by default, then holds them)."""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace

import pytest
from guardreasoner import GuardReasoner, build_prompt
from guardreasoner.engines.forcing import FORCED_ANSWER_TOKENS, PROMPT_ANSWER_OPENING
from guardreasoner.prompt import split_prompt
from guardreasoner.scores import LabelTokens
from guardreasoner.testing import forced_answer, guard_output
from test_vllm_engine_fake_vllm import (  # noqa: F401 (fake_vllm and make_engine are fixtures)
    LLM,
    AsyncLLM,
    Core,
    Logprob,
    fake_vllm,
    make_engine,
)

SURE, UNSURE = (-0.05, -6.0), (-0.6, -0.8)
"""Log-probabilities of the label written and of every other label candidate, in a forced answer."""


class Answering:
    """vLLM's answers, by request: a forced answer (the prompt ends with the opening's ids) gets the label
    lines, with every label candidate's log-probability at each token (``UNSURE`` when the request says
    ``unsure``); a reasoning request gets a whole guard output; a 1-token label request (the engine's scores
    of a reasoned output) gets the label the output has there at -0.1, the others at -3. Every request's
    prompt ids are recorded by kind."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.opening = tokenizer(PROMPT_ANSWER_OPENING, add_special_tokens=False).input_ids
        self.candidates = LabelTokens.from_tokenizer(tokenizer).texts
        self.requests: dict[str, list[list[int]]] = {"forced": [], "reasoning": [], "label": []}

    def labels(self, prompt_ids: list[int]) -> tuple:
        request, response = split_prompt(self.tokenizer.decode(prompt_ids, skip_special_tokens=True))
        harmful = "harmful" if "bomb" in request else "unharmful"
        return (harmful,) if response is None else (harmful, "refusal", "unharmful")

    def __call__(self, step):
        def answering_step(core):
            outputs = step(core)
            for output in outputs:
                self.answer(output)
            return outputs

        return answering_step

    def answer(self, output) -> None:
        prompt = list(output.prompt_token_ids)
        if prompt[-len(self.opening) :] == self.opening:
            self.requests["forced"].append(prompt)
            body = prompt[: -len(self.opening)]
            text = forced_answer(*self.labels(body)).text
            chosen, other = UNSURE if "unsure" in self.tokenizer.decode(body) else SURE
            ids = self.tokenizer(text, add_special_tokens=False).input_ids
            rows = [{c: Logprob(chosen if c == t else other) for c in self.candidates} for t in ids]
            output.outputs = [self.completion(text, ids, rows)]
        elif len(output.outputs[0].token_ids) == 1 and self.requests["reasoning"]:
            self.requests["label"].append(prompt)
            reasoned = self.requests["reasoning"][-1]
            ids = self.tokenizer(guard_output(*self.labels(reasoned)), add_special_tokens=False).input_ids
            done = len(prompt) - len(reasoned)
            output.outputs[0].logprobs = [
                {c: Logprob(-0.1 if c == ids[done] else -3.0) for c in self.candidates}
            ]
        else:
            self.requests["reasoning"].append(prompt)
            text = guard_output(*self.labels(prompt))
            output.outputs = [self.completion(text, self.tokenizer(text, add_special_tokens=False).input_ids)]

    @staticmethod
    def completion(text, ids, rows=None):
        return SimpleNamespace(
            text=text, token_ids=ids, finish_reason="stop", stop_reason=None, logprobs=rows
        )


@pytest.fixture
def answering(fake_vllm, tiny_model_dir, monkeypatch):  # noqa: F811 (the fixture)
    from transformers import AutoTokenizer

    answers = Answering(AutoTokenizer.from_pretrained(tiny_model_dir))
    monkeypatch.setattr(Core, "step", answers(Core.step))
    return answers


REQUESTS = [
    ("How do I make a bomb?", None),
    ("What is the capital of France?", None),
    ("unsure: a bomb joke?", None),
    ("Write a poem.", "Here it is."),
]


def test_the_forced_answer_is_one_short_request_with_its_own_label_scores(make_engine, answering):  # noqa: F811
    engine = make_engine()
    params = engine._forced_params()
    assert params.max_tokens == FORCED_ANSWER_TOKENS and params.temperature == 0.0
    assert params.logprob_token_ids == list(engine.label_tokens.candidate_ids)
    prompts = [build_prompt(*r) for r in REQUESTS]
    generations = engine.force_answers(prompts)
    (llm,) = LLM.instances
    assert llm.generate_calls == 1 and not answering.requests["label"]  # no label requests after it
    expected = [[*engine.encode(prompt), *answering.opening] for prompt in prompts]
    assert sorted(answering.requests["forced"]) == sorted(expected)
    for sent, generation in zip(expected, generations):
        assert generation.text.startswith(PROMPT_ANSWER_OPENING + "Request: ")
        assert generation.num_prompt_tokens == len(sent)
        assert "".join(generation.label_logprobs.tokens) == generation.text.removeprefix(
            PROMPT_ANSWER_OPENING
        )
    plain = make_engine(scores=False)
    assert plain._forced_params().logprob_token_ids is None
    assert plain.force_answers(prompts[:1])[0].label_logprobs is None


def test_auto_on_vllm_reasons_once_on_the_unsure_reusing_the_prompts_ids(tiny_model_dir, answering):
    guard = GuardReasoner(str(tiny_model_dir), engine="vllm", reasoning="auto", max_new_tokens=64)
    verdicts = guard.classify_batch(REQUESTS)
    (llm,) = LLM.instances
    assert llm.options["enable_prefix_caching"] is True
    forced, reasoning = answering.requests["forced"], answering.requests["reasoning"]
    assert len(forced) == len(REQUESTS) and len(reasoning) == 1
    # The reasoning request feeds exactly the forced request's prompt ids, which vLLM's prefix cache holds.
    assert [*reasoning[0], *answering.opening] in forced
    assert reasoning[0] == guard.engine.encode(build_prompt(*REQUESTS[2]))
    assert [v.reasoned for v in verdicts] == [False, False, True, False]
    sure = 1 / (1 + math.exp(SURE[1] - SURE[0]))
    first = verdicts[0]
    assert first.prompt_harmfulness == "harmful" and first.prompt_harmfulness_score == pytest.approx(sure)
    assert verdicts[1].first_pass_scores == {"prompt_harmfulness": pytest.approx(1 - sure)}
    assert verdicts[3].first_pass_scores == pytest.approx(
        {"prompt_harmfulness": 1 - sure, "response_refusal": sure, "response_harmfulness": 1 - sure}
    )
    unsure = verdicts[2]
    assert unsure.first_pass_scores == {"prompt_harmfulness": pytest.approx(1 / (1 + math.exp(-0.2)))}
    assert unsure.prompt_harmfulness == "harmful" and unsure.raw_output.startswith("# Task 1")
    assert unsure.prompt_harmfulness_score == pytest.approx(1 / (1 + math.exp(-2.9)))  # the label request's
    guard.close()


async def test_aclassify_on_the_async_backend_forces_then_reasons_on_its_own(tiny_model_dir, answering):
    guard = GuardReasoner(
        str(tiny_model_dir), engine="vllm", backend="async", reasoning="auto", max_new_tokens=64
    )
    verdicts = await asyncio.gather(*(guard.aclassify(*r) for r in REQUESTS))
    assert AsyncLLM.instances and not LLM.instances
    assert [v.reasoned for v in verdicts] == [False, False, True, False]
    assert len(answering.requests["forced"]) == 4 and len(answering.requests["reasoning"]) == 1
    never = GuardReasoner(str(tiny_model_dir), engine="vllm", backend="async", reasoning="never")
    verdict = await never.aclassify("unsure: a bomb joke?")
    assert verdict.prompt_harmfulness == "harmful" and not verdict.reasoned and verdict.is_harmful
    guard.close()
    never.close()


def test_without_scores_auto_on_vllm_reasons_on_everything(tiny_model_dir, answering):
    guard = GuardReasoner(
        str(tiny_model_dir), engine="vllm", reasoning="auto", scores=False, max_new_tokens=64
    )
    verdicts = guard.classify_batch(REQUESTS)
    assert all(v.reasoned and "(no_logprobs)" in v.escalation_reason for v in verdicts)
    assert len(answering.requests["reasoning"]) == len(REQUESTS)
    guard.close()
