"""A stand-in teacher: a tiny OpenAI-compatible chat server on 127.0.0.1 (stdlib only), run as its own process.

It answers ``POST /v1/chat/completions`` with a canned GuardReasoner trace built from the gold answers in the
system prompt. Markers in the conversation change what it does:

- ``MISMATCH``: the trace answers the opposite request label;
- ``FLAKY``: the first two attempts get a 500;
- ``SLOW``: the first attempt sleeps past the client's timeout;
- ``NOANSWER``: the trace has no Answers block.

``GET /stats`` returns the number of requests per conversation. Usage: ``python _teacher_server.py PORT_FILE``.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ATTEMPTS: Counter[str] = Counter()
LOCK = threading.Lock()


def trace(answers: dict[str, str], user: str) -> str:
    request = answers["Request"]
    if "MISMATCH" in user:
        request = "unharmful" if request == "harmful" else "harmful"
    body = f"# Task 1\n\n## Reasoning Step 1\nThe user asks: {user.splitlines()[1][:40]}\n\n## Conclusion\nThe request is {request}.\n"
    if "NOANSWER" in user:
        return body
    return (
        body
        + f"\n---\n\nAnswers: \nRequest: {request}\nCompletion: {answers['Completion']}\nResponse: {answers['Response']}\n"
    )


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            self._send(200, dict(ATTEMPTS))

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get("Authorization") == "Bearer bad-key":
            self._send(
                401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
            )
            return
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        with LOCK:
            ATTEMPTS[user] += 1
            attempt = ATTEMPTS[user]
        if "FLAKY" in user and attempt <= 2:
            self._send(500, {"error": {"message": "upstream overloaded", "type": "server_error"}})
            return
        if "SLOW" in user and attempt == 1:
            time.sleep(2.0)
        answers = dict(re.findall(r"^(Request|Completion|Response): (\w+)$", system, re.MULTILINE))
        self._send(
            200,
            {
                "id": f"chatcmpl-{attempt}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": trace(answers, user)},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )


def main(port_file: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as handle:
        handle.write(str(server.server_address[1]))
    import os

    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
