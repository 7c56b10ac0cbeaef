"""Turning records into trl's dataset formats, in the prompt format the model is trained with.

``raw``: the prompt is the plain text ``instruction + "\\n" + input`` (how the released models are run); the
completion is the output followed by EOS. ``chat``: the same prompt as the user turn of a chat template, the
output as the assistant turn (how LLaMA-Factory trained the released models). The format is recorded in the
trained model's directory (``guardreasoner.json``) so that the core runs the model the same way.
"""

from __future__ import annotations

from typing import Any

from guardreasoner.prompt import PromptFormat, render_chat

from guardreasoner_training.errors import TrainingDataError
from guardreasoner_training.records import TrainRecord

LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
"""LLaMA-Factory's ``llama3`` template, which trained the released models: no system turn, content untrimmed."""

_LLAMA3_TOKENS = ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")


def sft_example(record: TrainRecord) -> dict[str, Any]:
    """A prompt-completion example: the raw prompt text and the output (the format is applied when tokenizing)."""
    return {"prompt": record.prompt, "completion": record.output}


def preference_example(prompt: str, chosen: str, rejected: str, weight: float) -> dict[str, Any]:
    """A preference example with its sample weight."""
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "sample_weight": float(weight)}


def tokenize_answer(tokenizer: Any, prompt: str, answer: str, prompt_format: PromptFormat) -> list[int]:
    """Answer token ids as the model must produce them after the prompt, stop token included.

    Prompt and answer are tokenized apart (as LLaMA-Factory does), so the prompt's tokens are exactly those
    the model sees at inference, whatever the tokenizer would merge across the boundary.
    """
    if PromptFormat(prompt_format) is PromptFormat.RAW:
        return tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    head = render_chat(tokenizer, prompt)
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], tokenize=False
    )
    if not full.startswith(head):
        raise TrainingDataError(
            "The chat template renders the user turn differently with and without the assistant's answer, so "
            "the answer cannot be cut from the conversation; use --chat-template llama3 or a template whose "
            "generation prompt is a prefix of the full conversation."
        )
    return tokenizer(full[len(head) :], add_special_tokens=False)["input_ids"]


def prepare_tokenizer(
    tokenizer: Any, prompt_format: PromptFormat, chat_template: str | None = "llama3"
) -> Any:
    """Give the tokenizer what the format needs: a pad token, and for ``chat`` the template to train with.

    ``chat_template``: ``"llama3"`` (LLaMA-Factory's, the paper's; needs Llama 3's header tokens),
    ``"tokenizer"`` (keep the tokenizer's own), or a Jinja template string.
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if PromptFormat(prompt_format) is not PromptFormat.CHAT:
        if tokenizer.eos_token is None:
            raise TrainingDataError(
                "The tokenizer has no EOS token, so a raw-format model could not learn to stop; set one "
                "(tokenizer.eos_token) or train with --prompt-format chat."
            )
        return tokenizer
    if chat_template in (None, "tokenizer"):
        if not getattr(tokenizer, "chat_template", None):
            raise TrainingDataError(
                "--prompt-format chat needs a chat template, and this tokenizer has none. Pass --chat-template "
                "llama3 (for Llama 3 tokenizers), a Jinja template, or train with --prompt-format raw."
            )
        return tokenizer
    if chat_template == "llama3":
        vocab = tokenizer.get_vocab()
        missing = [token for token in _LLAMA3_TOKENS if token not in vocab]
        if missing:
            raise TrainingDataError(
                f"The llama3 chat template needs the tokens {missing}, which this tokenizer lacks. Use "
                "--chat-template tokenizer to keep the tokenizer's own template, pass a Jinja template, or "
                "train with --prompt-format raw."
            )
        tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    else:
        tokenizer.chat_template = chat_template
    return tokenizer


def end_of_turn_token_id(tokenizer: Any) -> int | None:
    """The special token a chat template puts after the assistant's text (``<|eot_id|>`` for Llama 3).

    A chat-trained model ends its answers with it, so generation must stop there too.
    """
    marker = "GUARDREASONER_END_MARKER"
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": marker}]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    marker_ids = tokenizer(marker, add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids) | {
        index for token, index in tokenizer.get_vocab().items() if token in _LLAMA3_TOKENS
    }
    for start in range(len(ids) - len(marker_ids), -1, -1):
        if ids[start : start + len(marker_ids)] == marker_ids:
            for token in ids[start + len(marker_ids) :]:
                if token in special:
                    return int(token)
            return None
    return None
