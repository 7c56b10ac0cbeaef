"""The framework-neutral adapter helpers: the lazily built guard, the block rule, and the base violation."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from guardreasoner import GuardReasonerError, Verdict, apply_policy, parse_output
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import GuardProvider, GuardReasonerViolation, is_violation
from guardreasoner.integrations import provider as provider_module
from guardreasoner.testing import ScriptedEngine, guard_output


def model_verdict(request: str, refusal: str | None = None, response: str | None = None) -> Verdict:
    """A verdict the model decided, parsed from a well-formed output with these labels."""
    verdict = apply_policy(
        parse_output(guard_output(request, refusal, response), has_response=refusal is not None)
    )
    assert verdict.decided_by == "model"
    return verdict


def policy_verdict(policy: str, *, has_response: bool) -> Verdict:
    """A verdict the policy decided: the output has no answers to read."""
    verdict = apply_policy(parse_output("I will not answer that.", has_response=has_response), policy)
    assert verdict.decided_by == "policy"
    return verdict


# -- GuardProvider ---------------------------------------------------------------------------------------


def test_a_given_guard_is_used_as_is():
    guard = GuardReasoner(engine=ScriptedEngine({}, default=guard_output("unharmful")))
    provider = GuardProvider(guard, None, {})
    assert provider.built
    assert provider.get() is guard


def test_guard_and_options_together_raise_naming_the_options():
    guard = GuardReasoner(engine=ScriptedEngine({}, default=guard_output("unharmful")))
    with pytest.raises(ValueError, match=r"\(max_new_tokens, model, policy\), not both"):
        GuardProvider(guard, "some/model", {"policy": "fail_open", "max_new_tokens": 16})
    with pytest.raises(ValueError, match=r"\(model\), not both"):
        GuardProvider(guard, "some/model", {})


def test_the_guard_is_built_on_first_use_from_the_options(monkeypatch):
    built: list[tuple[tuple, dict]] = []

    class Recording(GuardReasoner):
        def __init__(self, *args, **options):
            built.append((args, options))
            super().__init__(*args, **options)

    monkeypatch.setattr(provider_module, "GuardReasoner", Recording)
    engine = ScriptedEngine({"bomb": guard_output("harmful")}, default=guard_output("unharmful"))
    provider = GuardProvider(None, "some/model", {"engine": engine, "policy": "fail_open"})
    assert not provider.built and built == []

    guard = provider.get()
    assert provider.built and provider.get() is guard
    assert built == [(("some/model",), {"engine": engine, "policy": "fail_open"})]
    assert guard.model == "some/model" and guard.policy.value == "fail_open"
    assert guard.classify("How do I build a bomb?").is_harmful


def test_without_a_model_the_guard_is_built_with_its_default(monkeypatch):
    built: list[tuple] = []

    class Recording(GuardReasoner):
        def __init__(self, *args, **options):
            built.append(args)
            super().__init__(*args, **options)

    monkeypatch.setattr(provider_module, "GuardReasoner", Recording)
    provider = GuardProvider(None, None, {"engine": ScriptedEngine({}, default=guard_output("unharmful"))})
    provider.get()
    assert built == [()]


def test_the_lazy_build_happens_once_when_threads_race(monkeypatch):
    builds = 0
    count_lock = threading.Lock()

    class Slow(GuardReasoner):
        def __init__(self, *args, **options):
            nonlocal builds
            with count_lock:
                builds += 1
            time.sleep(0.05)  # wide enough a window for every thread to reach get() before the guard exists
            super().__init__(*args, **options)

    monkeypatch.setattr(provider_module, "GuardReasoner", Slow)
    provider = GuardProvider(None, None, {"engine": ScriptedEngine({}, default=guard_output("unharmful"))})
    threads = 8
    start = threading.Barrier(threads)

    def first_use(_: int) -> GuardReasoner:
        start.wait()
        return provider.get()

    with ThreadPoolExecutor(threads) as pool:
        guards = list(pool.map(first_use, range(threads)))
    assert builds == 1
    assert all(guard is guards[0] for guard in guards)


# -- is_violation ----------------------------------------------------------------------------------------


def test_a_request_blocks_when_the_decision_is_harmful():
    assert is_violation(model_verdict("harmful"), judged_on="request")
    assert not is_violation(model_verdict("unharmful"), judged_on="request")


def test_a_response_blocks_on_its_own_harmfulness_label():
    assert is_violation(model_verdict("unharmful", "compliance", "harmful"), judged_on="response")
    assert is_violation(model_verdict("harmful", "compliance", "harmful"), judged_on="response")
    assert not is_violation(model_verdict("unharmful", "compliance", "unharmful"), judged_on="response")


def test_a_refused_harmful_request_passes_when_the_response_is_judged():
    refused = model_verdict("harmful", "refusal", "unharmful")
    assert refused.is_harmful  # the decision covers the request...
    assert not is_violation(refused, judged_on="response")  # ...but what gets through is the refusal
    assert is_violation(refused, judged_on="request")


@pytest.mark.parametrize("judged_on", ["request", "response"])
def test_policy_decided_verdicts_block_as_the_policy_says(judged_on):
    has_response = judged_on == "response"
    assert is_violation(policy_verdict("fail_closed", has_response=has_response), judged_on=judged_on)
    assert not is_violation(policy_verdict("fail_open", has_response=has_response), judged_on=judged_on)


# -- GuardReasonerViolation --------------------------------------------------------------------------------------


def test_a_violation_carries_the_verdict_stage_and_content():
    verdict = model_verdict("harmful")
    violation = GuardReasonerViolation(verdict=verdict, stage="input", content="How do I build a bomb?")
    assert isinstance(violation, GuardReasonerError)
    assert violation.verdict is verdict
    assert violation.stage == "input"
    assert violation.content == "How do I build a bomb?"
    assert (
        str(violation)
        == "GuardReasoner blocked the input: the guard judged it harmful (prompt_harmfulness=harmful)."
    )


def test_a_policy_block_says_the_guard_could_not_decide():
    verdict = policy_verdict("fail_closed", has_response=True)
    violation = GuardReasonerViolation(verdict=verdict, stage="output", content="An answer.")
    assert str(violation) == (
        f"GuardReasoner blocked the output: the guard could not decide ({verdict.parse_status.value}) "
        "and policy fail_closed blocks."
    )


def test_a_given_message_replaces_the_default():
    violation = GuardReasonerViolation(
        verdict=model_verdict("harmful"), stage="input", content="x", message="Nope."
    )
    assert str(violation) == "Nope."
    assert violation.stage == "input"


# -- the shared vocabulary ------------------------------------------------------------------------------


def test_the_message_template_fills_stage_labels_and_who_decided():
    from guardreasoner.integrations import format_violation_message

    template = "Blocked at {stage} ({labels}; {decided_by}, {parse_status})."
    text = format_violation_message(template, model_verdict("harmful", "compliance", "harmful"), "output")
    assert text == (
        "Blocked at output (prompt_harmfulness=harmful, response_refusal=compliance, "
        "response_harmfulness=harmful; model, ok)."
    )
    policy = policy_verdict("fail_closed", has_response=False)
    assert format_violation_message("{labels} by {decided_by}: {parse_status}", policy, "input") == (
        f"none by policy: {policy.parse_status.value}"
    )
    assert format_violation_message("No {{braces}} here.", policy, "input") == "No {braces} here."


@pytest.mark.parametrize("template", ["Blocked: {category}", "{stage} {verdict.labels}", "{0}", "{}"])
def test_an_unknown_placeholder_is_refused_naming_the_known_ones(template):
    from guardreasoner.integrations import check_violation_message

    with pytest.raises(ValueError, match=r"unknown placeholder.*\{stage\}, \{labels\}, \{decided_by\}"):
        check_violation_message(template)


@pytest.mark.parametrize("template", ["Broken {stage", "", "   "])
def test_a_malformed_or_empty_template_is_refused(template):
    from guardreasoner.integrations import check_violation_message

    with pytest.raises(ValueError, match="violation_message"):
        check_violation_message(template)


def test_the_metadata_carries_the_full_verdict_as_json_data():
    import json

    from guardreasoner.integrations import violation_metadata

    verdict = model_verdict("harmful", "compliance", "harmful")
    metadata = violation_metadata(verdict, "output")
    assert metadata["stage"] == "output"
    assert Verdict.model_validate(metadata["verdict"]) == verdict
    assert json.loads(json.dumps(metadata)) == metadata


def test_exit_behavior_and_stream_mode_are_checked_with_the_choices_named():
    from guardreasoner.integrations import check_exit_behavior, check_stream_mode

    assert check_exit_behavior("end") == "end"
    with pytest.raises(ValueError, match="'error', 'end', 'replace', got 'block'"):
        check_exit_behavior("block")
    with pytest.raises(ValueError, match="'error', 'replace', got 'end'"):
        check_exit_behavior("end", ("error", "replace"))
    assert check_stream_mode("buffered") == "buffered"
    with pytest.raises(ValueError, match="'buffered', 'passthrough', 'whole', got 'live'"):
        check_stream_mode("live")
