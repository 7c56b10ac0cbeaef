"""The transformers engine: runs everywhere, CPU or CUDA.

Prompts are sorted by length and generated in batches of similar lengths (left-padded), so a batch wastes
little compute on padding; results come back in the caller's order.
"""

from __future__ import annotations

import threading
from typing import Any

from guardreasoner.engines.base import Engine, Generation, GenerationConfig
from guardreasoner.engines.forcing import PROMPT_ANSWER_OPENING, answer_config, opened
from guardreasoner.errors import EngineError, require
from guardreasoner.prompt import EncodedPrompt, PromptFormat, encode_prompt, render_prompt, stop_token_ids
from guardreasoner.scores import LabelLogprobs, LabelTokens, from_logprob_rows, token_texts


class HFEngine(Engine):
    """Greedy (or sampled) generation with ``transformers``.

    ``dtype`` defaults to bfloat16 on CUDA and float32 on CPU (bf16 matmuls are slow or unsupported on many
    CPUs). Pass ``model`` and ``tokenizer`` to use objects already loaded.
    """

    name = "hf"

    def __init__(
        self,
        path: str | None = None,
        *,
        prompt_format: PromptFormat | str = PromptFormat.RAW,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        model: Any = None,
        tokenizer: Any = None,
        attn_implementation: str | None = None,
    ):
        torch = require("torch", extra="hf", feature="The hf engine")
        transformers = require("transformers", extra="hf", feature="The hf engine")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if path is None and (model is None or tokenizer is None):
            raise ValueError("HFEngine needs a model path, or both model= and tokenizer=.")
        self._torch = torch
        self.prompt_format = PromptFormat(prompt_format)
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.tokenizer = tokenizer or transformers.AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model is None:
            options = {"dtype": getattr(torch, dtype)}
            if attn_implementation:
                options["attn_implementation"] = attn_implementation
            model = transformers.AutoModelForCausalLM.from_pretrained(path, **options).to(self.device)
        self.model = model.eval()
        self.max_context_tokens = getattr(self.model.config, "max_position_embeddings", None)
        self._eos_ids = stop_token_ids(
            self.tokenizer, self.prompt_format, self.model.generation_config.eos_token_id
        )
        self._lock = threading.Lock()
        self.label_tokens = LabelTokens.from_tokenizer(self.tokenizer)
        self._opening_ids = list(self.tokenizer(PROMPT_ANSWER_OPENING, add_special_tokens=False)["input_ids"])

    def render(self, prompt: str) -> str:
        return render_prompt(self.tokenizer, prompt, self.prompt_format)

    def encode(self, prompt: str) -> list[int]:
        """The token ids the model is fed for a raw prompt (those an :class:`EncodedPrompt` carries, if given)."""
        return encode_prompt(self.tokenizer, prompt, self.prompt_format)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def force_answers(self, prompts: list[str], *, timeout: float | None = None) -> list[Generation]:
        """Each prompt's ids and the answer opening's, a few greedy tokens; exact scores from the logits."""
        forced = [
            EncodedPrompt(p + PROMPT_ANSWER_OPENING, [*self.encode(p), *self._opening_ids]) for p in prompts
        ]
        return [opened(g) for g in self.generate_each(forced, answer_config(), timeout=timeout)]

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        encoded = [self.encode(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]), reverse=True)
        results: list[Generation | None] = [None] * len(prompts)
        # One generate at a time: a model shared by threads (async callers) must not interleave batches.
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                for index, generation in zip(
                    chunk, self._generate_batch([encoded[i] for i in chunk], config)
                ):
                    results[index] = generation
        return results  # type: ignore[return-value]

    def _generate_batch(self, batch: list[list[int]], config: GenerationConfig) -> list[Generation]:
        torch = self._torch
        width = max(map(len, batch))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=self.device)
        attention = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=self.device
        )
        sampling = config.temperature > 0
        options: dict[str, Any] = dict(
            max_new_tokens=config.max_new_tokens,
            do_sample=sampling,
            num_return_sequences=config.n,
            pad_token_id=pad,
            eos_token_id=sorted(self._eos_ids),
        )
        # The recorder sees the model's own distribution: first in the list, before any sampling warper.
        recorder = _LabelLogprobRecorder(torch, self.label_tokens.candidate_ids)
        processors = [recorder]
        if sampling:
            processors.append(_warper("TemperatureLogitsWarper", config.temperature))
            if config.top_p < 1.0:
                processors.append(_warper("TopPLogitsWarper", config.top_p))
            options.update(temperature=1.0, top_p=1.0, top_k=0)
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        options["logits_processor"] = processors
        if config.seed is not None:
            torch.manual_seed(config.seed)
        try:
            with torch.inference_mode():
                output = self.model.generate(input_ids=input_ids, attention_mask=attention, **options)
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"transformers generation failed: {exc}") from exc
        new_tokens = output[:, width:].tolist()
        steps = recorder.rows()
        generations = []
        for row, ids in enumerate(batch):
            samples = [self._finish(new_tokens[row * config.n + k]) for k in range(config.n)]
            text, reason, count = samples[0]
            kept = new_tokens[row * config.n][: count if reason == "length" else count - 1]
            generations.append(
                Generation(
                    text=text,
                    finish_reason=reason,
                    num_generated_tokens=count,
                    num_prompt_tokens=len(ids),
                    samples=tuple(s[0] for s in samples),
                    label_logprobs=self._label_logprobs(kept, [step[row * config.n] for step in steps]),
                )
            )
        return generations

    def _label_logprobs(self, tokens: list[int], rows: list[list[float]]) -> LabelLogprobs:
        def decode(ids: list[int]) -> str:
            return self.tokenizer.decode(ids, skip_special_tokens=True)

        return from_logprob_rows(token_texts(tokens, decode), rows[: len(tokens)], self.label_tokens)

    def _finish(self, tokens: list[int]) -> tuple[str, str, int]:
        """Cut at the first stop token; say whether generation stopped or ran out of tokens."""
        for position, token in enumerate(tokens):
            if token in self._eos_ids:
                return (
                    self.tokenizer.decode(tokens[:position], skip_special_tokens=True),
                    "stop",
                    position + 1,
                )
        return self.tokenizer.decode(tokens, skip_special_tokens=True), "length", len(tokens)

    def close(self) -> None:
        self.model = None
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()


class _LabelLogprobRecorder:
    """A logits processor that keeps, per step, only the label candidates' log-probabilities.

    A handful of floats per step instead of ``output_logits``' full vocabulary (GBs over 2048 steps).
    """

    def __init__(self, torch: Any, candidate_ids: tuple[int, ...]):
        self._torch = torch
        self._ids = torch.tensor(candidate_ids)
        self._steps: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        logits = scores.float()
        if self._ids.device != logits.device:
            self._ids = self._ids.to(logits.device)
        self._steps.append(logits[:, self._ids] - self._torch.logsumexp(logits, dim=-1, keepdim=True))
        return scores

    def rows(self) -> list[list[list[float]]]:
        """``[step][row][candidate]``."""
        return self._torch.stack(self._steps).tolist() if self._steps else []


def _warper(name: str, value: float) -> Any:
    from transformers import generation

    return getattr(generation, name)(value)
