"""How long a prompt is, as the server will see it: a local tokenizer when given, else the server's own
``POST /tokenize`` (vLLM has one, which also reports the context window), else a bytes bound.

Without any way to count, a prompt over ``max_prompt_bytes`` is refused before it is sent, instead of
shipping a megabyte for the server to reject.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from guardreasoner.errors import ContextLengthError, InvalidInputError, require
from guardreasoner.prompt import PromptFormat

logger = logging.getLogger("guardreasoner")

DEFAULT_MAX_PROMPT_BYTES = 256 * 1024
"""About 64k tokens of ordinary text: beyond any GuardReasoner conversation worth sending uncounted."""


class TokenCounter:
    """Counts prompt tokens (BOS and, for chat models, the chat template included)."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        prompt_format: PromptFormat,
        model: str,
        root_url: str,
        api_key: str,
        timeout: float,
        max_prompt_bytes: int | None,
    ):
        self._spec = tokenizer
        self._tokenizer: Any = None
        self._format = prompt_format
        self._model = model
        self._tokenize_url = f"{root_url}/tokenize"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = min(timeout, 2.0)
        self.max_prompt_bytes = max_prompt_bytes
        self._server: bool | None = None if tokenizer is None else False
        """Whether the server has ``/tokenize``: None until asked (only asked when no tokenizer is given)."""
        self._server_context: int | None = None
        self._lock = threading.Lock()

    # -- counting -------------------------------------------------------------------------------------

    def count(self, text: str) -> int | None:
        tokenizer = self._local()
        if tokenizer is not None:
            return _count_locally(tokenizer, text, self._format)
        if self._server is False:
            return None
        reply = self._ask_server(text)
        return None if reply is None else reply[0]

    def server_context(self) -> int | None:
        """The context window the server reports (vLLM's ``max_model_len``), asking it once."""
        if self._server is None:
            self._ask_server("a")
        return self._server_context

    def can_count(self) -> bool:
        """Whether prompts are counted (the server is not asked here: this runs on the event loop)."""
        return self._spec is not None or self._server is True

    # -- the bound when counting is impossible -----------------------------------------------------------

    def check_sizes(self, prompts: list[str]) -> None:
        """Refuse, before anything is sent, a prompt that cannot be encoded or is over the bytes bound."""
        for index, prompt in enumerate(prompts):
            try:
                size = len(prompt.encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise InvalidInputError(
                    f"Prompt {index} holds a character that is not valid Unicode text "
                    f"({exc.object[exc.start : exc.end]!r} at position {exc.start}, a lone surrogate): it cannot "
                    "be sent as UTF-8. Fix the text (e.g. decode the source with errors='replace')."
                ) from None
            if self.max_prompt_bytes is not None and size > self.max_prompt_bytes and not self.can_count():
                raise ContextLengthError(
                    f"Prompt {index} is {size} bytes, over max_prompt_bytes={self.max_prompt_bytes}, and the "
                    "engine cannot count its tokens (no tokenizer=, and the server has no /tokenize). Shorten "
                    "it, pass tokenizer= (a path or hub id) with max_context_tokens=, or raise max_prompt_bytes."
                )

    def tokenizer(self) -> Any:
        """The local tokenizer (loaded on first use), or None when none was given."""
        return self._local()

    # -- internals ------------------------------------------------------------------------------------

    def _local(self) -> Any:
        if self._tokenizer is None and self._spec is not None:
            spec = self._spec
            if isinstance(spec, (str, os.PathLike)):
                transformers = require(
                    "transformers", extra="hf", feature="Counting tokens for the openai engine"
                )
                spec = transformers.AutoTokenizer.from_pretrained(os.fspath(spec))
            self._tokenizer = spec
        return self._tokenizer

    def _ask_server(self, text: str) -> tuple[int, int | None] | None:
        import httpx

        body: dict[str, Any] = {"model": self._model}
        if self._format is PromptFormat.RAW:
            body["prompt"] = text
        else:
            body.update(messages=[{"role": "user", "content": text}], add_generation_prompt=True)
        try:
            reply = httpx.post(self._tokenize_url, json=body, headers=self._headers, timeout=self._timeout)
            data = reply.json() if reply.status_code == 200 else None
            count = data.get("count") if isinstance(data, dict) else None
            if not isinstance(count, int):
                raise ValueError(f"HTTP {reply.status_code}, no token count")
        except Exception as exc:  # no /tokenize here: fall back to the bytes bound, once and for all
            with self._lock:
                if self._server is None:
                    self._server = False
                    logger.info(
                        "No token counting at %s (%s); prompts are bounded by size.", self._tokenize_url, exc
                    )
            return None
        context = data.get("max_model_len")
        with self._lock:
            self._server = True
            if isinstance(context, int):
                self._server_context = context
        return count, self._server_context


def _count_locally(tokenizer: Any, text: str, prompt_format: PromptFormat) -> int:
    if prompt_format is PromptFormat.CHAT and getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)
    return len(tokenizer(text)["input_ids"])
