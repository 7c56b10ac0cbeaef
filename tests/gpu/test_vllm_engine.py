"""The vllm engine on a real GPU. Skipped, with the reason, where vLLM or CUDA is missing (CI has neither).

    pytest -m gpu tests/gpu -ra

``benchmarks/gpu/vllm_suite.py`` runs the larger parity check and the timings; these tests are the quick
version of its claims: float32 greedy tokens identical to transformers', concurrent async callers batched
on one engine, no double BOS in the chat format, the guard's verdicts on vLLM, and speculative decoding
(vLLM 0.34's GPU suffix speculator with its corpus seeded, a draft model) keeping the float32 greedy tokens.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

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

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "gpu"))
from vllm_suite import hf_greedy  # noqa: E402  (transformers' greedy ids: the suite's reference too)

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
    expected = hf_greedy(hf, PROMPTS, CONFIG.max_new_tokens)
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
    assert [list(o.outputs[0].token_ids) for o in outputs] == hf_greedy(hf_chat, PROMPTS[:4], 32)
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


def test_label_scores_match_transformers_in_float32(trained_guard_dir):
    """The label requests' scores (``label_scores.py``) equal the hf engine's within 1e-3 on the trained tiny
    guard, sync and async (``benchmarks/gpu/vllm_scores_check.py`` is the same check with timings)."""
    conversations = [(case.prompt, case.response) for case in TINY_GUARD_CASES]
    with GuardReasoner(str(trained_guard_dir), engine="hf", dtype="float32", max_new_tokens=120) as hf_guard:
        reference = hf_guard.classify_batch(conversations)
    with GuardReasoner(
        str(trained_guard_dir), engine="vllm", dtype="float32", max_new_tokens=120, gpu_memory_utilization=0.1
    ) as guard:
        runs = [guard.classify_batch(conversations), asyncio.run(guard.aclassify_batch(conversations))]
    compared = 0
    for verdicts in runs:
        for ref, got in zip(reference, verdicts, strict=True):
            assert got.raw_output == ref.raw_output
            for name in ("prompt_harmfulness_score", "response_refusal_score", "response_harmfulness_score"):
                if getattr(ref, name) is not None:
                    assert getattr(got, name) == pytest.approx(getattr(ref, name), abs=1e-3)
                    compared += 1
    assert compared > 0


def test_the_runaway_cap_forces_the_answer_as_transformers_would_continue(engine, hf):
    from guardreasoner.engines.forcing import ANSWER_OPENING, FORCED_ANSWER_TOKENS

    capped = VLLMEngine(llm=engine._backend.result().llm, max_reasoning_tokens=8)
    generations = capped.generate(PROMPTS[:6], CONFIG)
    opening = hf.tokenizer(ANSWER_OPENING, add_special_tokens=False).input_ids
    reasoning = hf_greedy(hf, PROMPTS[:6], 8)
    forced = [i for i, g in enumerate(generations) if g.forced_answer]
    assert forced, "random weights should run past 8 tokens"
    for i in forced:
        answer = hf_greedy(hf, [hf.encode(PROMPTS[i]) + reasoning[i] + opening], FORCED_ANSWER_TOKENS)[0]
        text, _, count = hf._finish(answer)
        assert (
            generations[i].text
            == hf.tokenizer.decode(reasoning[i], skip_special_tokens=True) + ANSWER_OPENING + text
        )
        assert generations[i].num_generated_tokens == 8 + len(opening) + count
    capped.close()


def accepted_tokens(engine) -> float:
    """vLLM's count of accepted draft tokens so far (the engine needs ``disable_log_stats=False``)."""
    return sum(m.value for m in engine.vllm_metrics() if m.name == "vllm:spec_decode_num_accepted_tokens")


def has_gpu_suffix_speculator() -> bool:
    from guardreasoner.engines.vllm.speculative import check_suffix_support
    from guardreasoner.errors import EngineLoadError

    try:
        check_suffix_support(vllm)
    except EngineLoadError:
        return False
    return True


def suffix_speculator(max_model_len: int, max_num_seqs: int, k: int):
    """vLLM's own GPU suffix speculator, built without an engine (what ``init_speculator`` passes it)."""
    from types import SimpleNamespace

    from vllm.v1.worker.gpu.spec_decode.suffix.speculator import SuffixSpeculator

    config = SimpleNamespace(
        speculative_config=SimpleNamespace(
            num_speculative_tokens=k,
            suffix_decoding_max_tree_depth=24,
            suffix_decoding_corpus_tokens=1 << 16,
            suffix_decoding_max_cached_requests=10000,
            enable_adaptive_verification=False,
        ),
        scheduler_config=SimpleNamespace(max_num_seqs=max_num_seqs),
        model_config=SimpleNamespace(max_model_len=max_model_len),
    )
    return SuffixSpeculator(config, torch.device("cuda"), SimpleNamespace(req_id_to_index={}))


@pytest.mark.skipif(
    not has_gpu_suffix_speculator(), reason="suffix decoding needs vLLM 0.34's GPU speculator"
)
def test_seeding_fills_the_corpus_as_vllm_ingests_finished_requests_and_drafts_from_it(monkeypatch):
    """``suffix_cache.py`` against vLLM's own kernels: seeded pairs leave the corpus and its index exactly as
    the same requests finishing would, and a new request drafts a seeded continuation."""
    from types import SimpleNamespace

    import numpy as np
    from guardreasoner.engines.vllm import suffix_cache

    monkeypatch.setattr(suffix_cache, "BATCH", 2)
    max_len, max_reqs, k = 256, 8, 6
    rng = np.random.default_rng(0)
    pairs = [
        (
            rng.integers(100, 5000, rng.integers(5, 40)).tolist(),
            rng.integers(100, 5000, rng.integers(20, 60)).tolist(),
        )
        for _ in range(5)
    ]
    seeded = suffix_speculator(max_len, max_reqs, k)
    worker = type("Worker", (suffix_cache.SuffixCorpusSeeder,), {})()
    worker.model_runner = SimpleNamespace(speculator=seeded)
    assert worker.guardreasoner_seed_suffix_corpus(pairs) == 5
    # The same requests finishing in vLLM, two per step, their tokens where vLLM's RequestState keeps them.
    served = suffix_speculator(max_len, max_reqs, k)
    tokens = torch.zeros((max_reqs, max_len), dtype=torch.int32, device="cuda")
    prompt_len, total_len, slots = np.zeros(max_reqs, dtype=np.int32), torch.zeros_like(tokens[:, 0]), {}
    for i, (prompt, output) in enumerate(pairs):
        slot = slots[f"req-{i}"] = (3 * i) % max_reqs
        tokens[slot, : len(prompt) + len(output)] = torch.tensor(prompt + output, dtype=torch.int32)
        prompt_len[slot], total_len[slot] = len(prompt), len(prompt) + len(output)
    served.req_states = SimpleNamespace(
        req_id_to_index=slots,
        prompt_len=SimpleNamespace(np=prompt_len),
        all_token_ids=SimpleNamespace(gpu=tokens),
        total_len=SimpleNamespace(gpu=total_len),
    )
    for finished in (["req-0", "req-1"], ["req-2", "req-3"], ["req-4"]):
        served.on_requests_finished(set(finished))
    assert seeded.num_docs == served.num_docs == 5
    assert torch.equal(seeded.corpus, served.corpus) and torch.equal(seeded.table, served.table)
    assert seeded.corpus[: int(seeded.corpus_head)].tolist() == [
        t for prompt, output in pairs for t in (*prompt[-3:], *output, -1)
    ]
    # A new request whose history ends like the third output's first 8 tokens drafts its next k.
    prompt, output = pairs[2]
    history = rng.integers(100, 5000, 10).tolist() + output[:8]
    live = torch.zeros((max_reqs, max_len), dtype=torch.int32, device="cuda")
    live[0, : len(history)] = torch.tensor(history, dtype=torch.int32)
    lengths = torch.zeros(max_reqs, dtype=torch.int32, device="cuda")
    lengths[0] = len(history)
    seeded.req_states = SimpleNamespace(
        req_id_to_index={"new": 0},
        all_token_ids=SimpleNamespace(gpu=live),
        total_len=SimpleNamespace(gpu=lengths),
    )
    one = torch.ones(1, dtype=torch.int32, device="cuda")
    drafts = seeded.propose(
        SimpleNamespace(num_reqs=1, idx_mapping=torch.zeros(1, dtype=torch.int32, device="cuda")),
        None,
        None,
        None,
        None,
        num_sampled=one,
        num_rejected=one * 0,
        last_sampled=torch.tensor([[history[-1]]], device="cuda"),
        next_prefill_tokens=None,
        temperature=None,
        seeds=None,
    )
    assert drafts[0].tolist() == output[8 : 8 + k]


@pytest.mark.skipif(
    not has_gpu_suffix_speculator(), reason="suffix decoding needs vLLM 0.34's GPU speculator"
)
def test_suffix_speculation_with_a_seeded_corpus_keeps_the_float32_greedy_tokens(engine, tiny_model_dir):
    """The cheapest proof that speculation keeps the model's answers: identical tokens, drafts accepted."""
    plain = request_outputs(engine, PROMPTS, CONFIG)
    suffix = VLLMEngine(
        str(tiny_model_dir),
        dtype="float32",
        gpu_memory_utilization=0.1,
        max_model_len=2048,
        speculative="suffix",
        speculate_up_to_batch=8,  # the batch of 24 below drafts nothing, the single prompts do
        disable_log_stats=False,
    )
    spec = suffix._engine_args["speculative_config"]
    assert spec["method"] == "suffix" and spec["num_speculative_tokens_per_batch_size"][1][2] == 0
    # Seeded with the plain engine's own outputs, the corpus holds each continuation: drafts get accepted.
    assert suffix.warm_suffix_cache([(p, o.outputs[0].text) for p, o in zip(PROMPTS, plain)]) == len(PROMPTS)
    batch = request_outputs(suffix, PROMPTS, CONFIG)
    single = [request_outputs(suffix, [p], CONFIG)[0] for p in PROMPTS[:6]]
    tokens = [list(o.outputs[0].token_ids) for o in plain]
    assert [list(o.outputs[0].token_ids) for o in batch] == tokens
    assert [list(o.outputs[0].token_ids) for o in single] == tokens[:6]
    assert accepted_tokens(suffix) > 0
    suffix.close()


def test_a_draft_model_keeps_the_float32_greedy_tokens(engine, tiny_model_dir):
    """The model drafting for itself (``speculative=<a directory>``): every draft should hold."""
    plain = request_outputs(engine, PROMPTS[:6], CONFIG)
    drafted = VLLMEngine(
        str(tiny_model_dir),
        dtype="float32",
        gpu_memory_utilization=0.1,
        max_model_len=2048,
        speculative=str(tiny_model_dir),
        disable_log_stats=False,
    )
    outputs = request_outputs(drafted, PROMPTS[:6], CONFIG)
    assert [list(o.outputs[0].token_ids) for o in outputs] == [list(o.outputs[0].token_ids) for o in plain]
    assert accepted_tokens(drafted) > 0
    drafted.close()
