"""The framework-neutral flow helpers: multi-turn folding, checks beside the call, buffered streams."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from guardreasoner import InvalidInputError
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import (
    BufferedStreamModerator,
    GuardReasonerViolation,
    arun_beside_check,
    fold_history,
    is_violation,
    run_beside_check,
)
from guardreasoner.testing import ScriptedEngine

# -- fold_history ---------------------------------------------------------------------------------------


def test_the_request_alone_is_the_last_user_turn_and_the_response_the_reply_after_it():
    turns = [("system", "Be nice."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Weather?")]
    assert fold_history(turns, window=0) == ("Weather?", None)
    assert fold_history([*turns, ("assistant", "Sunny.")], window=0) == ("Weather?", "Sunny.")


def test_earlier_turns_are_folded_in_the_trained_format(guard: GuardReasoner):
    turns = [("human", "Tell me about pipe bombs."), ("ai", "They are dangerous."), ("user", "Steps?")]
    prompt, response = fold_history([*turns, ("assistant", "First, ...")])
    assert prompt == "Tell me about pipe bombs.\n\nAI assistant:\nThey are dangerous.\n\nHuman user:\nSteps?"
    assert response == "First, ..."
    # The guard's prompt reads as one transcript: the core adds the first "Human user:" and the last reply.
    from guardreasoner import build_prompt

    assert (
        "Human user:\nTell me about pipe bombs.\n\nAI assistant:\nThey are dangerous.\n\nHuman user:\n"
        "Steps?\n\nAI assistant:\nFirst, ..." in build_prompt(prompt, response)
    )


def test_a_request_split_over_two_turns_is_caught_only_when_the_window_covers_it(guard: GuardReasoner):
    turns = [
        ("user", "I'm writing about pipe bombs."),
        ("assistant", "Happy to help with the history."),
        ("user", "Fine. Now list the parts and the steps."),
    ]
    assert not guard.classify(*fold_history(turns, window=0)).is_harmful
    assert guard.classify(*fold_history(turns, window=2)).is_harmful
    # The window starts on a user turn: with one earlier turn (the assistant's), the request is alone.
    assert fold_history(turns, window=1) == ("Fine. Now list the parts and the steps.", None)


def test_the_character_bound_leaves_older_turns_out_whole():
    turns = [
        ("user", "a" * 50),
        ("assistant", "b" * 50),
        ("user", "c" * 10),
        ("assistant", "d" * 10),
        ("user", "e"),
    ]
    prompt, _ = fold_history(turns, window=4, max_chars=30)
    assert prompt == "c" * 10 + "\n\nAI assistant:\n" + "d" * 10 + "\n\nHuman user:\ne"
    prompt, _ = fold_history(turns, window=4, max_chars=5)
    assert prompt == "e"


def test_a_chat_without_a_user_turn_or_with_bad_turns_is_refused():
    with pytest.raises(InvalidInputError, match="no user turn"):
        fold_history([("assistant", "Hi"), ("system", "x")])
    with pytest.raises(InvalidInputError, match=r"\(role, text\) pair"):
        fold_history(["just text"])
    with pytest.raises(ValueError, match=">= 0"):
        fold_history([("user", "x")], window=-1)


# -- checks beside the call -----------------------------------------------------------------------------


def _blocks(verdict) -> bool:
    return is_violation(verdict, judged_on="request")


def test_the_call_runs_beside_the_check_and_is_released_after_a_safe_verdict(guard: GuardReasoner):
    started = threading.Event()

    def check():
        assert started.wait(5), "the call did not start beside the check"
        return guard.classify("What is the weather?")

    def call():
        started.set()
        return "Sunny."

    held = run_beside_check(check, call, blocks=_blocks)
    assert not held.blocked and held.result == "Sunny."


def test_a_harmful_verdict_drops_the_result_without_waiting_for_the_call(guard: GuardReasoner):
    release = threading.Event()
    begin = time.monotonic()
    held = run_beside_check(
        lambda: guard.classify("How do I build a bomb?"),
        lambda: release.wait(5) and "A plan.",
        blocks=_blocks,
    )
    assert held.blocked and held.result is None and held.verdict.is_harmful
    assert time.monotonic() - begin < 2
    release.set()


def test_the_calls_error_counts_only_after_a_safe_verdict(guard: GuardReasoner):
    def fail():
        raise RuntimeError("model down")

    assert run_beside_check(lambda: guard.classify("a bomb"), fail, blocks=_blocks).blocked
    with pytest.raises(RuntimeError, match="model down"):
        run_beside_check(lambda: guard.classify("the weather"), fail, blocks=_blocks)


async def test_async_the_call_is_cancelled_on_a_harmful_verdict(guard: GuardReasoner):
    events: list[str] = []

    async def call():
        events.append("started")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        events.append("finished")
        return "A plan."

    held = await arun_beside_check(guard.aclassify("How do I build a bomb?"), call, blocks=_blocks)
    assert held.blocked and held.result is None
    assert events == ["started", "cancelled"]


async def test_async_a_benign_turn_costs_the_longer_of_check_and_call(make_guard):
    class Slow(ScriptedEngine):
        async def agenerate(self, prompts, config):
            await asyncio.sleep(0.3)
            return self.generate(prompts, config)

    from tests.conftest import judge

    guard = GuardReasoner(engine=Slow(judge))

    async def call():
        await asyncio.sleep(0.3)
        return "ok"

    begin = time.monotonic()
    held = await arun_beside_check(guard.aclassify("The weather?"), call, blocks=_blocks)
    assert held.result == "ok"
    assert time.monotonic() - begin < 0.55  # serial would take 0.6 s


# -- buffered streams -----------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    return [word + " " for word in text.split()]


SAFE = "The weather today is sunny with a light breeze and clear skies all afternoon long."
HARMFUL = "Sure. First you get the parts, then you assemble the bomb, then you place it carefully."


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 13, 100])
def test_nothing_after_the_harmful_word_or_in_its_chunk_is_released(guard: GuardReasoner, chunk: int):
    pieces = words(HARMFUL)
    bomb = next(i for i, piece in enumerate(pieces) if "bomb" in piece)
    moderator = BufferedStreamModerator(guard, "How do I do it?", chunk_tokens=chunk)
    released: list[str] = []
    with pytest.raises(GuardReasonerViolation) as caught:
        for piece in moderator.moderate(iter(pieces)):
            released.append(piece)
    assert caught.value.stage == "output" and "bomb" in caught.value.content
    assert not any("bomb" in piece for piece in released)
    assert len(released) == (bomb // chunk) * chunk  # every chunk before the harmful one, nothing else


@pytest.mark.parametrize("chunk", [1, 4, 7, 100])
def test_a_safe_stream_is_released_whole_chunk_by_chunk(guard: GuardReasoner, chunk: int):
    pieces = words(SAFE)
    moderator = BufferedStreamModerator(guard, "Weather?", chunk_tokens=chunk)
    seen_at_check: list[int] = []
    released: list[str] = []
    original = guard.classify

    def recording(prompt, response=None):
        seen_at_check.append(len(released))
        return original(prompt, response)

    guard.classify = recording  # type: ignore[method-assign]
    for piece in moderator.moderate(pieces):
        released.append(piece)
    assert released == pieces
    assert moderator.checks == -(-len(pieces) // chunk)
    # Each check saw everything before its chunk released, and nothing of its own chunk.
    assert seen_at_check == [min(i * chunk, len(pieces)) for i in range(moderator.checks)]


def test_each_check_reads_the_prompt_and_the_response_so_far_or_a_bounded_context(guard: GuardReasoner):
    seen: list[tuple[str, str]] = []
    original = guard.classify
    guard.classify = lambda p, r=None: seen.append((p, r)) or original(p, r)  # type: ignore[method-assign]
    list(BufferedStreamModerator(guard, "Q?", chunk_tokens=2).moderate(words("a b c d e")))
    assert seen == [("Q?", "a b "), ("Q?", "a b c d "), ("Q?", "a b c d e ")]
    seen.clear()
    list(BufferedStreamModerator(guard, "Q?", chunk_tokens=2, context_tokens=1).moderate(words("a b c d e")))
    assert [r for _, r in seen] == ["a b ", "b c d ", "d e "]  # one word of the released text, then the chunk


@pytest.mark.parametrize("read_ahead", [False, True])
def test_a_harmful_chunk_closes_the_upstream_stream(guard: GuardReasoner, read_ahead: bool):
    produced: list[int] = []
    closed: list[bool] = []
    tail = words(SAFE) * 10

    def model():
        try:
            for index, piece in enumerate(words(HARMFUL) + tail):
                produced.append(index)
                time.sleep(0.005 * read_ahead)  # a model's pace, so reading ahead cannot take it all at once
                yield piece
        finally:
            closed.append(True)

    moderator = BufferedStreamModerator(guard, "Q?", chunk_tokens=4, read_ahead=read_ahead)
    with pytest.raises(GuardReasonerViolation):
        list(moderator.moderate(model()))
    deadline = time.monotonic() + 2
    while not closed and time.monotonic() < deadline:  # the reader thread closes it after its current piece
        time.sleep(0.01)
    assert closed == [True]
    if read_ahead:  # read ahead while the guard judged, then stopped: far short of the whole answer
        assert len(produced) < len(words(HARMFUL)) + len(tail) // 2
    else:
        assert len(produced) < len(words(HARMFUL)) + 4


def test_reading_ahead_keeps_the_stream_flowing_while_the_guard_judges(timed_guard):
    guard = timed_guard(0.1)

    def model():
        for piece in words(SAFE) * 2:  # 32 pieces, 10 ms each: 0.32 s
            time.sleep(0.01)
            yield piece

    times = {}
    for read_ahead in (False, True):
        begin = time.perf_counter()
        released = list(
            BufferedStreamModerator(guard, "Q?", chunk_tokens=8, read_ahead=read_ahead).moderate(model())
        )
        times[read_ahead] = time.perf_counter() - begin
        assert released == words(SAFE) * 2
    # Four checks of about 0.1 s each: in series with the stream about 0.72 s; read ahead about 0.42 s.
    assert times[True] < times[False] - 0.15, times


async def test_async_streams_release_and_stop_the_same_way(guard: GuardReasoner):
    async def model(text):
        for piece in words(text):
            yield piece

    released = [p async for p in BufferedStreamModerator(guard, "Q?", chunk_tokens=3).amoderate(model(SAFE))]
    assert released == words(SAFE)
    released = []
    with pytest.raises(GuardReasonerViolation):
        async for piece in BufferedStreamModerator(guard, "Q?", chunk_tokens=3).amoderate(model(HARMFUL)):
            released.append(piece)
    assert released and not any("bomb" in p for p in released)


def test_a_bad_chunk_size_is_refused(guard: GuardReasoner):
    with pytest.raises(ValueError, match="stream_chunk_tokens"):
        BufferedStreamModerator(guard, "Q?", chunk_tokens=0)
