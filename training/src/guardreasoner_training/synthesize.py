"""Stage 1: reasoning traces for labelled conversations, from a teacher model behind an OpenAI-compatible chat API.

As in the paper (GPT-4o), the teacher sees the gold labels in its instruction and writes step-by-step reasoning for
each task that ends in those answers; only traces whose final answers match the gold labels are kept. Requests
run concurrently and are retried with exponential back-off on timeouts, connection errors, rate limits and 5xx
answers. Every finished record is appended at once (kept traces to the output, rejected ones with the reason to
``<output>.rejected.jsonl``), so a stopped run resumes where it left off.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardreasoner.parsing import parse_output
from guardreasoner.prompt import INSTRUCTION

from guardreasoner_training.errors import TeacherError
from guardreasoner_training.flags import flag_field
from guardreasoner_training.records import LabelledExample, iter_jsonl_tolerant, open_for_append

TEACHER_INSTRUCTION = """You are a classifier for analyzing interactions between humans and AI.

Given a request from a human user and a response from an AI assistant, finish three tasks.

Task 1: determine whether the human user's request is harmful or unharmful.
Task 2: determine whether the AI assistant's response is a refusal or compliance.
Task 3: determine whether the AI assistant's response is harmful or unharmful.

Only use the labels harmful/unharmful and refusal/compliance; never write "not harmful", "harmless" or similar.

Think step by step. Decide the number of steps yourself, from 1 to 10; each step is one small unit of reasoning.
The conclusion of your reasoning must agree with the final answers.

The ground truth is

---

{answers}

Write the reasoning of each task under a heading "# Task N", each step under "## Reasoning Step N", and end with
the ground truth exactly as given above, starting with "Answers:". Where the ground truth says None for Task 2 or
Task 3 and there is an AI response, decide that label yourself; where there is no AI response, keep None.
"""
"""The teacher's system prompt; ``{answers}`` receives the gold answer block."""


@dataclass(frozen=True)
class TeacherConfig:
    """How the teacher is asked; ``synthesize``'s flags come from these fields."""

    model: str = flag_field("gpt-4o-2024-08-06", "The teacher's model name.", flag="--teacher-model")
    base_url: str | None = flag_field(None, "OpenAI-compatible API base URL (default: OpenAI).")
    """``https://api.openai.com/v1`` when None; any OpenAI-compatible server works."""
    api_key: str | None = flag_field(None, "API key (default: $OPENAI_API_KEY).")
    """Local servers usually accept any string."""
    temperature: float = flag_field(0.0, "Teacher sampling temperature.")
    max_tokens: int = flag_field(2048, "Teacher answer length limit.")
    concurrency: int = flag_field(16, "Requests in flight.")
    max_attempts: int = flag_field(5, "Attempts per record on transient errors.")
    """Transient: timeouts, connection errors, 429, 5xx."""
    timeout_s: float = flag_field(120.0, "Seconds per request.", flag="--timeout")
    backoff_s: float = 1.0
    """First retry delay; doubles each attempt, with jitter."""


@dataclass
class SynthesisStats:
    kept: int = 0
    rejected: int = 0
    failed: int = 0
    skipped: int = 0
    retries: int = 0


def rejected_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.name + ".rejected.jsonl")


def check_trace(example: LabelledExample, trace: str) -> str | None:
    """None when the trace's final answers give every known gold label, else why not."""
    verdict = parse_output(trace, has_response=example.response is not None)
    if verdict.is_parsing_error:
        return f"unreadable answers ({verdict.parse_status.value})"
    stated = {
        "request": verdict.prompt_harmfulness,
        "completion": verdict.response_refusal,
        "response": verdict.response_harmfulness,
    }
    wrong = [
        f"{name}: {stated[name]} != {gold}"
        for name, gold in example.labels.known.items()
        if stated[name] != gold
    ]
    return "; ".join(wrong) if wrong else None


def teacher_messages(example: LabelledExample) -> list[dict[str, str]]:
    return [
        {
            "role": "system",
            "content": TEACHER_INSTRUCTION.format(answers=example.labels.answer_block().rstrip()),
        },
        {"role": "user", "content": example.input},
    ]


async def synthesize(
    examples: list[LabelledExample],
    out_path: str | Path,
    config: TeacherConfig,
    *,
    client: Any = None,
    on_done: Callable[[str], None] | None = None,
) -> SynthesisStats:
    """Write a trace for every example not yet in ``out_path`` or its rejected file."""
    from openai import AsyncOpenAI

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rejected = rejected_path(out_path)
    finished = {str(row.get("id")) for path in (out_path, rejected) for row in iter_jsonl_tolerant(path)}
    stats = SynthesisStats(skipped=sum(1 for e in examples if e.id in finished))
    todo = [e for e in examples if e.id not in finished]
    if not todo:
        return stats
    own_client = client is None
    if own_client:
        client = AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or _env_key(),
            max_retries=0,
            timeout=config.timeout_s,
        )
    semaphore = asyncio.Semaphore(config.concurrency)
    lock = asyncio.Lock()
    fatal: list[BaseException] = []

    with (
        open_for_append(out_path) as kept_file,
        open_for_append(rejected) as rejected_file,
    ):

        async def write(handle: Any, row: dict[str, Any]) -> None:
            async with lock:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                handle.flush()

        async def one(example: LabelledExample) -> None:
            if fatal:
                return
            async with semaphore:
                try:
                    trace, retries = await _ask(client, example, config)
                except TeacherError as exc:
                    fatal.append(exc)
                    return
                except _Exhausted as exc:
                    stats.failed += 1
                    stats.retries += exc.retries
                    if on_done:
                        on_done("failed")
                    return
            stats.retries += retries
            reason = check_trace(example, trace)
            if reason is None:
                stats.kept += 1
                await write(
                    kept_file,
                    {"id": example.id, "instruction": INSTRUCTION, "input": example.input, "output": trace},
                )
            else:
                stats.rejected += 1
                await write(
                    rejected_file,
                    {
                        "id": example.id,
                        "input": example.input,
                        "output": trace,
                        "labels": example.labels.as_dict(),
                        "reason": reason,
                    },
                )
            if on_done:
                on_done("kept" if reason is None else "rejected")

        try:
            await asyncio.gather(*(one(example) for example in todo))
        finally:
            if own_client:
                await client.close()
    if fatal:
        raise fatal[0]
    return stats


class _Exhausted(Exception):
    def __init__(self, retries: int, last: BaseException):
        super().__init__(str(last))
        self.retries = retries


async def _ask(client: Any, example: LabelledExample, config: TeacherConfig) -> tuple[str, int]:
    import openai

    transient = (
        openai.APITimeoutError,
        openai.APIConnectionError,
        openai.RateLimitError,
        openai.InternalServerError,
    )
    last: BaseException | None = None
    for attempt in range(config.max_attempts):
        if attempt:
            delay = config.backoff_s * 2 ** (attempt - 1)
            await asyncio.sleep(delay * (0.5 + random.random()))
        try:
            response = await client.chat.completions.create(
                model=config.model,
                messages=teacher_messages(example),
                temperature=config.temperature,
                max_tokens=config.max_tokens,
            )
        except transient as exc:
            last = exc
            continue
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                last = exc
                continue
            raise TeacherError(
                f"The teacher API refused the request ({exc.status_code}: {exc.message}). Check --teacher-model, "
                "--base-url and the API key (OPENAI_API_KEY or --api-key); retrying will not help."
            ) from exc
        content = response.choices[0].message.content if response.choices else None
        if not content:
            last = RuntimeError("empty answer")
            continue
        return content, attempt
    raise _Exhausted(config.max_attempts - 1, last or RuntimeError("no attempt"))


def _env_key() -> str:
    import os

    return os.environ.get("OPENAI_API_KEY") or "not-needed"
