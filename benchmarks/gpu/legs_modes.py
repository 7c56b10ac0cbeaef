"""``vllm_perf.py``'s ``modes`` leg: answer-first (``GuardReasoner(reasoning=...)``) on the stand-in guard.

One vLLM engine (the engine's defaults, scores on) serves three guards, one per mode, so every figure comes
from the same weights, cache and GPU in one run:

1. Calibration: ``never`` and ``always`` on 256 unseen conversations; the band is the one with the lowest
   escalation rate whose label agreement with ``always`` is at least 99% there (the same search as ``guardreasoner
   eval --calibrate-band``).
2. One verdict's latency (median of 5 conversations) for ``never``, ``auto`` at that band and ``always``, and
   for the classifier-shaped call: the same prompt, 5 greedy tokens, nothing parsed (what a classifier guard
   costs on this model).
3. The 512 held-out conversations at once in each mode: verdicts/s, generated tokens, ``auto``'s escalation
   rate, and the label agreement of ``auto`` and ``never`` with ``always`` (each applicable label counted).
"""

from __future__ import annotations

import statistics

from vllm_suite import now

TARGET_AGREEMENT = 0.99
CLASSIFIER_TOKENS = 5


def label_agreement(rows, reference, other) -> float:
    """The share of ``other``'s applicable labels equal to ``reference``'s, counted as ``eval`` counts them
    (:func:`guardreasoner.eval.answer_first.first_pass`)."""
    from guardreasoner.eval.answer_first import first_pass

    passes = [
        first_pass(mine, theirs, has_response=row["response"] is not None)
        for row, theirs, mine in zip(rows, reference, other)
    ]
    return round(sum(p.agreeing for p in passes) / sum(p.labels for p in passes), 4)


def modes_leg(args, data, guard_factory) -> dict:
    from guardreasoner import GuardReasoner
    from guardreasoner.eval.answer_first import first_pass
    from guardreasoner.eval.band import choose_band

    always = guard_factory()
    engine = always.engine
    shared = {"engine": engine, "max_new_tokens": always.generation.max_new_tokens}
    never = GuardReasoner(reasoning="never", **shared)
    conversations = lambda rows: [(r["prompt"], r["response"]) for r in rows]  # noqa: E731
    result: dict = {}
    try:
        never.classify_batch(conversations(data["warmup"]))  # builds the engine, compiles both request shapes
        always.classify_batch(conversations(data["warmup"]))

        calibration = data["concurrent"]
        t = now()
        first = never.classify_batch(conversations(calibration))
        reference = always.classify_batch(conversations(calibration))
        chosen = choose_band(
            [
                first_pass(n, a, has_response=row["response"] is not None)
                for row, n, a in zip(calibration, first, reference)
            ],
            TARGET_AGREEMENT,
        )
        result["calibration"] = {
            "conversations": len(calibration),
            "band": [chosen.band.low, chosen.band.high],
            "agreement": chosen.agreement,
            "escalation_rate": chosen.escalation_rate,
            "seconds": round(now() - t, 1),
        }
        auto = GuardReasoner(reasoning="auto", reasoning_band=chosen.band, **shared)
        guards = {"never": never, "auto": auto, "always": always}

        llm = engine._ensure_backend("offline").result().llm  # the classifier-shaped call goes to vLLM itself
        from vllm import SamplingParams

        classifier = SamplingParams(temperature=0.0, max_tokens=CLASSIFIER_TOKENS, ignore_eos=True)
        token_prompts = lambda rows: [{"prompt_token_ids": engine.encode(p)} for p, _ in conversations(rows)]  # noqa: E731

        def one_classifier_call(row) -> None:
            llm.generate(token_prompts([row]), classifier, use_tqdm=False)

        latency: dict = {}
        for name, run in [("classifier_5_tokens", one_classifier_call)] + [
            (name, lambda row, guard=guard: guard.classify(row["prompt"], row["response"]))
            for name, guard in guards.items()
        ]:
            times = []
            for row in data["single"]:
                t = now()
                run(row)
                times.append(now() - t)
            latency[name] = round(statistics.median(times), 4)
        result["one_verdict_s"] = latency
        result["never_vs_classifier_latency"] = round(latency["never"] / latency["classifier_5_tokens"], 2)

        rows = data["batch"]
        t = now()
        llm.generate(token_prompts(rows), classifier, use_tqdm=False)
        batch: dict = {"classifier_5_tokens": {"verdicts_per_s": round(len(rows) / (now() - t), 1)}}
        verdicts = {}
        for name, guard in guards.items():
            t = now()
            verdicts[name] = guard.classify_batch(conversations(rows))
            wall = now() - t
            batch[name] = {
                "wall_s": round(wall, 3),
                "verdicts_per_s": round(len(rows) / wall, 1),
                "generated_tokens_mean": round(
                    statistics.mean(v.total_generated_tokens or 0 for v in verdicts[name]), 1
                ),
            }
        escalated = sum(v.reasoned for v in verdicts["auto"])
        result["batch_512"] = batch
        result["auto"] = {
            "escalation_rate": round(escalated / len(rows), 4),
            "agreement_with_always": label_agreement(rows, verdicts["always"], verdicts["auto"]),
            "cost_vs_always": round(batch["auto"]["wall_s"] / batch["always"]["wall_s"], 3),
        }
        result["never"] = {
            "agreement_with_always": label_agreement(rows, verdicts["always"], verdicts["never"]),
            "cost_vs_always": round(batch["never"]["wall_s"] / batch["always"]["wall_s"], 3),
        }
    finally:
        always.close()
    return result
