"""Test servers on 127.0.0.1 for the openai engine.

* :func:`start_transformers_serve`: a real ``transformers serve`` process pinned to a local model directory,
  started in its own process group and killed with it.
* :class:`StubServer`: a scripted OpenAI-compatible HTTP server (stdlib, in a thread) that answers with chosen
  status codes or delays. It only stands in for a server's failures (retries, timeouts, concurrency), never
  for generation.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------------------------
# transformers serve
# --------------------------------------------------------------------------------------------------------------


def transformers_serve_command() -> list[str]:
    """The ``transformers`` CLI of the running interpreter's environment."""
    exe = Path(sys.executable).with_name("transformers")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("transformers")
    if found:
        return [found]
    return [sys.executable, "-m", "transformers.cli.transformers"]


def serving_unavailable_reason() -> str | None:
    """Why ``transformers serve`` cannot run here, or None when it can."""
    import importlib.util

    missing = [
        name
        for name in ("transformers", "fastapi", "uvicorn", "torch")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        return (
            f"transformers serve needs {', '.join(missing)}: "
            'pip install "transformers[serving]" (keep the installed torch)'
        )
    return None


@dataclass
class ServedModel:
    base_url: str
    """``http://127.0.0.1:<port>/v1``"""
    model: str
    """The name the server answers to (the directory path it was pinned to)."""
    model_dir: Path
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


def _wait_healthy(process: subprocess.Popen, root_url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"transformers serve exited with code {process.returncode} before becoming healthy. Log:\n"
                + log_path.read_text(encoding="utf-8", errors="replace")
            )
        try:
            with urllib.request.urlopen(root_url + "/health", timeout=2) as reply:
                if reply.status == 200:
                    return
                last_error = f"HTTP {reply.status}"
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.2)
    raise TimeoutError(
        f"transformers serve did not answer {root_url}/health within {timeout:.0f}s (last: {last_error}). Log:\n"
        + log_path.read_text(encoding="utf-8", errors="replace")
    )


def _warm_up(base_url: str, model: str, timeout: float) -> None:
    """Load the model into the server (the first request loads it) so tests time generation, not loading."""
    body = json.dumps({"model": model, "prompt": "warm up", "max_tokens": 1, "temperature": 0.0}).encode()
    request = urllib.request.Request(
        base_url + "/completions", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        reply.read()


def stop_process_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)


@contextlib.contextmanager
def start_transformers_serve(
    model_dir: str | os.PathLike[str],
    log_dir: str | os.PathLike[str],
    *,
    startup_timeout: float = 120.0,
    port: int | None = None,
) -> Iterator[ServedModel]:
    """Run ``transformers serve <model_dir>`` on a loopback port (a free one unless given) until the block
    exits."""
    model_dir = Path(model_dir)
    model = str(model_dir)
    port = port or free_port()
    log_path = Path(log_dir) / f"transformers-serve-{port}-{time.monotonic_ns()}.log"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        # A tiny model gains nothing from intra-op threads, and on a busy 2-core runner they thrash:
        # one thread makes generation about 5x faster there.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.pop("OPENAI_BASE_URL", None)
    command = [
        *transformers_serve_command(),
        "serve",
        model,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--no-continuous-batching",
        "--log-level",
        "info",
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    root_url = f"http://{LOOPBACK}:{port}"
    served = ServedModel(f"{root_url}/v1", model, model_dir, process, log_path)
    try:
        _wait_healthy(process, root_url, log_path, startup_timeout)
        _warm_up(served.base_url, model, startup_timeout)
        yield served
    finally:
        stop_process_group(process)


# --------------------------------------------------------------------------------------------------------------
# A scripted stub server for failures
# --------------------------------------------------------------------------------------------------------------

Reply = tuple  # (status, JSON body) or (status, JSON body, headers)


def completion_body(
    text: str = "ok", finish_reason: str = "stop", prompt_tokens: int = 3, completion_tokens: int = 1
):
    return {
        "id": "cmpl-stub",
        "object": "text_completion",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@dataclass
class StubServer:
    """Answers each POST with ``script(request_number, body) -> (status, json)`` after ``delay(...)`` seconds."""

    script: Callable[[int, dict], Reply]
    delay: Callable[[int, dict], float] = lambda number, body: 0.0
    models: list[str] = field(default_factory=lambda: ["stub-model"])
    requests: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://{LOOPBACK}:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> StubServer:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(
                        200, {"object": "list", "data": [{"id": m, "object": "model"} for m in stub.models]}
                    )
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with stub._lock:
                    number = len(stub.requests)
                    stub.requests.append(body)
                    stub.paths.append(self.path)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    pause = stub.delay(number, body)
                    if pause:
                        time.sleep(pause)
                    reply = stub.script(number, body)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1
                self._send(*reply)

        self._httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()
