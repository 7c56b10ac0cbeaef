"""Reference mode against the published evaluation script on the released predictions.

PUBLISHED holds the figures that the published ``evaluate.py`` (GuardReasoner repository, read from the mirror
tingxu22/GuardReasoner at deabda79) computed on ``../shared/data/guardreasoner/predictions/{1B,3B,8B}``:
its own ``cal_f1`` and ``cal_weighted_f1``, unchanged, run outside this repository with pandas 2.3.3 and
scikit-learn 1.6.1 over the six datasets present (see benchmarks/results/eval_reference_2026-11-29.json).
"""

from __future__ import annotations

import json

import pytest
from guardreasoner.eval import evaluate_predictions
from guardreasoner.tasks import Task

PUBLISHED = {
    "1B": {
        "prompt": {
            "HarmBenchPrompt": 96.31236442516268,
            "AegisSafetyTest": 89.34240362811792,
            "SimpleSafetyTests": 98.98989898989899,
            "weighted_average": 93.11112879526951,
        },
        "response": {
            "HarmBenchResponse": 84.6938775510204,
            "XSTestReponseHarmful": 90.6832298136646,
            "weighted_average": 87.24278128111517,
        },
        "refusal": {"XSTestResponseRefusal": 91.05263157894737, "weighted_average": 91.05263157894737},
    },
    "3B": {
        "prompt": {
            "HarmBenchPrompt": 89.0951276102088,
            "AegisSafetyTest": 91.3907284768212,
            "SimpleSafetyTests": 100.0,
            "weighted_average": 91.83811894272023,
        },
        "response": {
            "HarmBenchResponse": 86.05851979345955,
            "XSTestReponseHarmful": 91.35802469135803,
            "weighted_average": 88.31384344275604,
        },
        "refusal": {"XSTestResponseRefusal": 80.61224489795919, "weighted_average": 80.61224489795919},
    },
    "8B": {
        "prompt": {
            "HarmBenchPrompt": 92.09932279909707,
            "AegisSafetyTest": 90.17857142857143,
            "SimpleSafetyTests": 99.49748743718592,
            "weighted_average": 92.17133815982798,
        },
        "response": {
            "HarmBenchResponse": 85.6152512998267,
            "XSTestReponseHarmful": 93.75,
            "weighted_average": 89.0771767962745,
        },
        "refusal": {"XSTestResponseRefusal": 93.6842105263158, "weighted_average": 93.6842105263158},
    },
}
UNAVAILABLE = {
    "prompt": ["ToxicChat", "OpenAIModeration", "WildGuardTest"],
    "response": ["SafeRLHF", "BeaverTails", "WildGuardTest"],
    "refusal": ["WildGuardTest"],
}


@pytest.mark.parametrize("size", ["1B", "3B", "8B"])
def test_reference_mode_reproduces_the_published_script(shared_data, size):
    table = evaluate_predictions(shared_data / "predictions" / size, mode="reference").to_json()
    for task, figures in PUBLISHED[size].items():
        for name, published in figures.items():
            assert table[task][name] == pytest.approx(published, abs=0.01), (size, task, name)
        assert all(table[task][name] is None for name in UNAVAILABLE[task])


def test_cli_prints_and_writes_the_published_figures(shared_data, cli, tmp_path):
    target = tmp_path / "8B.json"
    result = cli(
        "eval",
        "--predictions",
        shared_data / "predictions" / "8B",
        "--mode",
        "reference",
        "--json-file",
        target,
    )
    assert result.exit_code == 0, result.output
    table = json.loads(target.read_text())
    for task, figures in PUBLISHED["8B"].items():
        for name, published in figures.items():
            assert table[task][name] == pytest.approx(published, abs=0.01)
            assert f"{published:.2f}" in result.output
    assert result.output.count("unavailable") == 7  # three prompt, three response, one refusal dataset
    assert "covers HarmBenchPrompt, AegisSafetyTest, SimpleSafetyTests" in result.output


def test_reference_mode_counts_twice_the_3b_refusal_answers_that_strict_mode_recovers(shared_data):
    """22 of 3B's XSTest outputs state the refusal label in a per-task answer line and end with a final block
    saying ``Completion: None``: reference mode counts each twice as wrong, the parser recovers them."""
    folder = shared_data / "predictions" / "3B"
    reference = evaluate_predictions(folder, mode="reference").tasks[Task.RESPONSE_REFUSAL].scores[0]
    strict = evaluate_predictions(folder, mode="strict", datasets=["XSTestResponseRefusal"]).tasks[
        Task.RESPONSE_REFUSAL
    ]
    assert (reference.parse_failures, reference.counted_twice) == (22, 22)
    assert strict.scores[0].parse_failures <= 1
    assert strict.weighted_average > reference.f1 + 10
