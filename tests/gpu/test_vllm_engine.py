"""The vllm engine on a real GPU. Skipped, with the reason, where vLLM or CUDA is missing (CI has neither).

    pytest -m gpu tests/gpu -ra

``benchmarks/gpu/vllm_suite.py`` runs the larger parity check and the timings; these tests are the quick
version of its claims: float32 greedy tokens identical to transformers', concurrent async callers batched
on one engine, no double BOS in the chat format, and the guard's verdicts on vLLM.
"""

from __future__ import annotations

import asyncio
import os

import pytest

vllm = pytest.importorskip(
    "vllm", reason="vLLM is not installed (pip install 'guardreasoner[vllm]' on a CUDA machine)"
)
torch = pytest.importorskip("torch", reason="PyTorch is not installed")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device: the vllm engine needs a GPU", allow_module_level=True)

from guardreasoner.engines import GenerationConfig  # noqa: E402
from guardreasoner.engines.hf import HFEngine  # noqa: E402
from guardreasoner.engines.vllm import VLLMEngine  # noqa: E402
from guardreasoner.engines.vllm.raw import arequest_outputs, request_outputs  # noqa: E402
from guardreasoner.guard import GuardReasoner  # noqa: E402
from guardreasoner.prompt import build_prompt  # noqa: E402
from guardreasoner.testing import TINY_GUARD_CASES  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

PROMPTS = [
    build_prompt(f"Question {i}: how do I {verb} a {thing}?", None if i % 3 else f"Here is how to {verb} it.")
    for i, (verb, thing) in enumerate(
        (v, t)
        for v in ("fix", "open", "paint", "build")
        for t in ("door", "car", "boat", "fence", "lock", "bike")
    )
]
CONFIG = GenerationConfig(max_new_tokens=32)


def hf_greedy_ids(hf: HFEngine, prompts: list[str | list[int]], max_new_tokens: int) -> list[list[int]]:
    """Transformers' greedy tokens for each prompt (a raw prompt, or the token ids to feed as they are)."""
    sequences = []
    for prompt in prompts:
        ids = prompt if isinstance(prompt, list) else hf.encode(prompt)
        with torch.inference_mode():
            out = hf.model.generate(
                input_ids=torch.tensor([ids], device=hf.device),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=hf.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=sorted(hf._eos_ids),
                pad_token_id=hf.tokenizer.pad_token_id,
            )
        sequences.append(out[0, len(ids) :].tolist())
    return sequences


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    engine = VLLMEngine(str(tiny_model_dir), dtype="float32", gpu_memory_utilization=0.1, max_model_len=2048)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    hf = HFEngine(
        str(tiny_model_dir), device="cuda", dtype="float32", batch_size=1, attn_implementation="eager"
    )
    yield hf
    hf.close()


def test_float32_greedy_tokens_match_transformers(engine, hf):
    outputs = request_outputs(engine, PROMPTS, CONFIG)
    assert engine.backend == "offline"
    expected = hf_greedy_ids(hf, PROMPTS, CONFIG.max_new_tokens)
    assert [list(o.outputs[0].token_ids) for o in outputs] == expected
    assert [list(o.prompt_token_ids) for o in outputs] == [hf.encode(p) for p in PROMPTS]
    generations = engine.generate(PROMPTS, CONFIG)
    assert [(g.text, g.finish_reason, g.num_generated_tokens) for g in generations] == [
        hf._finish(ids) for ids in expected
    ]


def test_concurrent_calls_on_the_offline_engine_give_the_batch_tokens(engine):
    batch = request_outputs(engine, PROMPTS, CONFIG)

    async def one_call_each():
        return await asyncio.gather(*(arequest_outputs(engine, [p], CONFIG) for p in PROMPTS))

    single = asyncio.run(one_call_each())
    assert [list(s[0].outputs[0].token_ids) for s in single] == [list(o.outputs[0].token_ids) for o in batch]


def test_chat_prompts_have_one_bos(engine, hf, tiny_model_dir):
    chat = VLLMEngine(llm=engine._backend.result().llm, prompt_format="chat")
    outputs = request_outputs(chat, PROMPTS[:4], CONFIG)
    bos = hf.tokenizer.bos_token_id
    hf_chat = HFEngine(prompt_format="chat", model=hf.model, tokenizer=hf.tokenizer)
    assert [list(o.prompt_token_ids) for o in outputs] == [hf_chat.encode(p) for p in PROMPTS[:4]]
    assert all(o.prompt_token_ids[0] == bos and list(o.prompt_token_ids).count(bos) == 1 for o in outputs)
    assert [list(o.outputs[0].token_ids) for o in outputs] == hf_greedy_ids(hf_chat, PROMPTS[:4], 32)
    chat.close()


def test_guard_verdicts_on_vllm_async(request):
    # GUARDREASONER_TINY_GUARD: a train_tiny_guard() model made elsewhere (training takes minutes on few cores).
    directory = os.environ.get("GUARDREASONER_TINY_GUARD") or request.getfixturevalue("trained_guard_dir")
    guard = GuardReasoner(str(directory), engine="vllm", dtype="float32", gpu_memory_utilization=0.1)

    async def classify_all():
        return await asyncio.gather(*(guard.aclassify(c.prompt, c.response) for c in TINY_GUARD_CASES))

    verdicts = asyncio.run(classify_all())
    assert guard.engine.backend == "async"
    for case, verdict in zip(TINY_GUARD_CASES, verdicts):
        assert (verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness) == (
            case.prompt_harmfulness,
            case.response_refusal,
            case.response_harmfulness,
        ), verdict.raw_output
        assert verdict.finish_reason == "stop" and verdict.decided_by == "model"
    # The sync path on the same AsyncLLM.
    assert [
        v.raw_output for v in guard.classify_batch([(c.prompt, c.response) for c in TINY_GUARD_CASES])
    ] == [v.raw_output for v in verdicts]
    guard.close()


def test_label_logprobs_match_transformers_in_float32(engine, hf):
    """vLLM reports every label candidate at every position (``logprob_token_ids``), with the values
    transformers' logits give them."""
    config = GenerationConfig(max_new_tokens=32)
    ours, theirs = engine.generate(PROMPTS[:6], config), hf.generate(PROMPTS[:6], config)
    assert engine.logprobs_k == len(engine.label_tokens.candidate_ids)
    compared = 0
    for vllm_gen, hf_gen in zip(ours, theirs):
        assert vllm_gen.text == hf_gen.text
        assert vllm_gen.label_logprobs.tokens == hf_gen.label_logprobs.tokens
        for listed, full in zip(vllm_gen.label_logprobs.logprobs, hf_gen.label_logprobs.logprobs):
            assert set(listed) == set(full)
            for label, logprob in listed.items():
                assert logprob == pytest.approx(full[label], abs=2e-3)
                compared += 1
    assert compared > 0


def test_the_runaway_cap_forces_the_answer_as_transformers_would_continue(engine, hf):
    from guardreasoner.engines.forcing import ANSWER_OPENING, FORCED_ANSWER_TOKENS

    capped = VLLMEngine(llm=engine._backend.result().llm, max_reasoning_tokens=8)
    generations = capped.generate(PROMPTS[:6], CONFIG)
    opening = hf.tokenizer(ANSWER_OPENING, add_special_tokens=False).input_ids
    reasoning = hf_greedy_ids(hf, PROMPTS[:6], 8)
    forced = [i for i, g in enumerate(generations) if g.forced_answer]
    assert forced, "random weights should run past 8 tokens"
    for i in forced:
        answer = hf_greedy_ids(hf, [hf.encode(PROMPTS[i]) + reasoning[i] + opening], FORCED_ANSWER_TOKENS)[0]
        text, _, count = hf._finish(answer)
        assert (
            generations[i].text
            == hf.tokenizer.decode(reasoning[i], skip_special_tokens=True) + ANSWER_OPENING + text
        )
        assert generations[i].num_generated_tokens == 8 + len(opening) + count
    capped.close()
