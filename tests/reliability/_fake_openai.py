"""A small fake OpenAI-compatible server on loopback, for fault and load tests (raw asyncio, in a thread).

The client steers it from inside the conversation: the user's text carries ``[[mode]]`` markers and a
``nonce-<hex>`` tag. An ``ok`` answer is a well-formed GuardReasoner output whose reasoning echoes the
nonce and whose label is ``harmful`` when the text says ``bad-request``, so every verdict can be traced back
to its own request. Modes (a mode ``name*k`` misbehaves on the first ``k`` requests of that nonce, then
answers ``ok``):

``hang`` (never answers), ``slow`` (headers at once, then the body a piece every 0.2 s), ``500``, ``429``
(``Retry-After`` from ``retry_after``), ``reset`` (closes the connection with an RST), ``html`` (200 with an
HTML page), ``badjson`` (200 with invalid JSON), ``shape`` (200 with ``{"choices": "oops"}``), ``nochoices``
(200 with an empty list of choices); ``long`` is an ``ok`` answer with 40,000 characters of reasoning.

With a ``tokenizer`` set, a Completions request with ``logprobs=k`` gets them in the Completions shape: each
token of the output with ``label_probability`` for the token it chose, and the other label's candidate (where
the token is one) with the rest, so that the guard's score for the label it reads is ``label_probability``.

An answer-first request (a prompt that ends with the forced answer opening) gets the label lines alone, at
probability 0.6 when the prompt says ``unsure``, else ``label_probability``; its body is kept in
``forced_bodies``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import re
import socket
import struct
import threading
from dataclasses import dataclass, field

from guardreasoner import GuardReasoner
from guardreasoner.engines.forcing import PROMPT_ANSWER_OPENING
from guardreasoner.scores import LabelTokens, token_texts
from guardreasoner.testing import forced_answer, guard_output

MODE = re.compile(r"\[\[(\w+)(?:\*(\d+))?\]\]")
NONCE = re.compile(r"nonce-([0-9a-f]+)")
FAULT_MODES = ("hang", "slow", "500", "429", "reset", "html", "badjson", "shape", "nochoices")


def expected_label(text: str) -> str:
    return "harmful" if "bad-request" in text else "unharmful"


def ok_output(prompt: str) -> str:
    nonce = NONCE.search(prompt)
    reasoning = f"The request carries nonce-{nonce.group(1) if nonce else 'none'}."
    return guard_output(expected_label(prompt), reasoning=reasoning)


@dataclass
class FakeOpenAIServer:
    retry_after: float = 0.05
    slow_piece_seconds: float = 0.2
    port: int = 0
    requests: int = 0
    faults: collections.Counter = field(default_factory=collections.Counter)
    """Faults injected, by mode."""
    served: collections.Counter = field(default_factory=collections.Counter)
    """Requests per nonce."""
    late_bodies_finished: int = 0
    tokenize_context: int | None = None
    """When set, the server has vLLM's ``POST /tokenize`` (one token per word, plus BOS) with this context."""
    tokenizer: object = None
    """When set, Completions requests with ``logprobs`` get them (see the module's docstring)."""
    label_probability: float = 0.8
    forced_bodies: list = field(default_factory=list)
    """The bodies of answer-first requests (see the module's docstring)."""

    def __post_init__(self):
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def guard(self, tokenizer: object = None, **options) -> GuardReasoner:
        """A guard on the openai engine, served by this server (``tokenizer``: the served model's, for scores)."""
        return GuardReasoner(
            "fake-model", engine="openai", base_url=self.base_url, tokenizer=tokenizer, **options
        )

    # -- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> FakeOpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Listen (again, on the same port after :meth:`stop`)."""
        self._stopping = False
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def listen():
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, backlog=4096, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-openai", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(listen(), self._loop).result(10)
        ready.wait(10)

    def stop(self) -> None:
        """Stop listening and drop every open connection (a killed server)."""
        loop = self._loop
        if loop is None:
            return

        async def shut():
            self._stopping = True
            self._server.close()
            # A connection accepted just before the close may not have reached _handle yet: let those run
            # (they abort themselves) before the loop stops, so no client waits on a socket nobody serves.
            for _ in range(3):
                for writer in list(self._writers):
                    writer.transport.abort()
                await asyncio.sleep(0.02)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()
        self._loop = None

    # -- HTTP -----------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping:  # accepted while the server was being killed
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                headers = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                method, path, _ = line.decode("latin-1").split(" ", 2)
                if not await self._respond(method, path, body, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    async def _respond(self, method: str, path: str, raw: bytes, writer: asyncio.StreamWriter) -> bool:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            return await _send(
                writer, 200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
            )
        if method == "POST" and path == "/tokenize" and self.tokenize_context is not None:
            text = json.loads(raw)["prompt"]
            count = len(text.split()) + 1
            return await _send(
                writer, 200, {"count": count, "max_model_len": self.tokenize_context, "tokens": []}
            )
        if method != "POST" or not path.endswith("/completions"):
            return await _send(writer, 404, {"detail": "Not Found"})
        body = json.loads(raw or b"{}")
        prompt = body.get("prompt") or body["messages"][-1]["content"]
        self.requests += 1
        nonce = NONCE.search(prompt)
        key = nonce.group(1) if nonce else ""
        seen = self.served[key]
        self.served[key] += 1
        mode = "ok"
        for name, times in MODE.findall(prompt):
            if not times or seen < int(times):
                mode = name
                break
        if mode in FAULT_MODES:
            self.faults[mode] += 1
        if mode == "hang":
            await asyncio.sleep(3600)
            return False
        if mode == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if mode == "500":
            return await _send(writer, 500, {"error": {"message": "injected server error"}})
        if mode == "429":
            headers = {"Retry-After": f"{self.retry_after:g}"}
            return await _send(writer, 429, {"error": {"message": "injected rate limit"}}, headers)
        if mode == "html":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            return await _send(writer, 200, page, content_type="text/html")
        if mode == "badjson":
            return await _send(writer, 200, b'{"id": "x", "choices": [', content_type="application/json")
        if mode == "shape":
            return await _send(writer, 200, {"id": "x", "object": "text_completion", "choices": "oops"})
        if mode == "nochoices":
            return await _send(writer, 200, {"id": "x", "object": "text_completion", "choices": []})
        forced = prompt.endswith(PROMPT_ANSWER_OPENING)
        self.forced_bodies += [body] if forced else []
        text = forced_answer(expected_label(prompt)).text if forced else ok_output(prompt)
        if mode == "long":
            text = text.replace("The request carries", "The request carries " + "and so on " * 4000, 1)
        answer = completion(text, chat="messages" in body)
        if body.get("logprobs") and self.tokenizer is not None and "messages" not in body:
            unsure = forced and "unsure" in prompt
            answer["choices"][0]["logprobs"] = self._logprobs(text, 0.6 if unsure else self.label_probability)
        if mode == "slow":
            data = json.dumps(answer).encode()
            await _send(writer, 200, data, pieces=max(len(data) // 40, 1), pause=self.slow_piece_seconds)
            self.late_bodies_finished += 1
            return True
        return await _send(writer, 200, answer)

    def _logprobs(self, text: str, probability: float) -> dict:
        """The Completions API's ``logprobs`` for ``text``, tokenized as the guard's tokenizer would."""
        labels = LabelTokens.from_tokenizer(self.tokenizer)
        other = {}
        for choice in labels.choices.values():
            other[choice.positive], other[choice.negative] = choice.negative, choice.positive
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        tokens = token_texts(ids, lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True))
        chosen, rest = math.log(probability), math.log(1 - probability)
        tops = [{token: chosen, **({other[token]: rest} if token in other else {})} for token in tokens]
        return {"tokens": tokens, "token_logprobs": [chosen] * len(tokens), "top_logprobs": tops}


def completion(text: str, *, chat: bool = False) -> dict:
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
    return {
        "id": "cmpl-fake",
        "object": "chat.completion" if chat else "text_completion",
        "created": 0,
        "model": "fake-model",
        "choices": [choice],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    }


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    payload: dict | bytes,
    headers: dict | None = None,
    *,
    content_type: str = "application/json",
    pieces: int = 1,
    pause: float = 0.0,
) -> bool:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    head = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", f"Content-Length: {len(data)}"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    size = -(-len(data) // pieces)
    for start in range(0, len(data), size):
        if start:
            await asyncio.sleep(pause)
        writer.write(data[start : start + size])
        await writer.drain()
    return True
