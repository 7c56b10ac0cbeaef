"""The prompt must be byte-identical to what the released models were evaluated on; prompt.py owns the format."""

from __future__ import annotations

import json

import pytest
from guardreasoner.errors import PromptFormatError
from guardreasoner.parsing import parse_output
from guardreasoner.prompt import (
    INSTRUCTION,
    EncodedPrompt,
    answer_block,
    build_input,
    build_prompt,
    encode_prompt,
    join_prompt,
    render_chat,
    render_prompt,
    split_input,
    split_prompt,
    stop_token_ids,
)
from guardreasoner.tasks import Task

# Prediction folder -> benchmark file, and whether the set has AI responses.
DATASETS = {
    "SimpleSafetyTests": ("0_0_SimpleSafetyTests", False),
    "AegisSafetyTest": ("0_1_AegisSafetyTest", False),
    "HarmBenchPrompt": ("0_3_harmbench_prompt", False),
    "HarmBenchResponse": ("0_5_harmbench_response", True),
    "XSTestReponseHarmful": ("0_6_xstest_response_harmful", True),
    "XSTestResponseRefusal": ("0_7_xstest_response_refusal", True),
}


def test_instruction_matches_every_benchmark_record(shared_data):
    files = sorted((shared_data / "benchmark").glob("*.json"))
    assert len(files) == 10
    for path in files:
        for record in json.loads(path.read_text(encoding="utf-8")):
            assert record["instruction"] == INSTRUCTION, path.name


@pytest.mark.parametrize("size", ["1B", "3B", "8B"])
def test_prompt_rebuilds_every_released_prediction(shared_data, size):
    checked = 0
    for folder, (benchmark, has_response) in DATASETS.items():
        records = json.loads((shared_data / "benchmark" / f"{benchmark}.json").read_text(encoding="utf-8"))
        lines = (shared_data / "predictions" / size / folder / "generated_predictions.jsonl").read_text(
            encoding="utf-8"
        )
        predictions = [json.loads(line) for line in lines.split("\n") if line.strip()]
        assert len(predictions) == len(records), folder
        for prediction, record in zip(predictions, records):
            prompt, response = split_input(record["input"])
            assert (response is not None) is has_response
            assert build_prompt(prompt, response).encode() == prediction["prompt"].encode()
            assert join_prompt(record["instruction"], record["input"]) == prediction["prompt"]
            assert split_prompt(prediction["prompt"]) == (prompt, response)
            checked += 1
    assert checked == 2195


def test_no_response_is_the_literal_none():
    assert build_input("hi") == "Human user:\nhi\n\nAI assistant:\nNone\n\n"
    assert build_prompt("hi", "hello").endswith("Human user:\nhi\n\nAI assistant:\nhello\n\n")
    assert build_prompt("hi").startswith(INSTRUCTION + "\nHuman user:")


@pytest.mark.parametrize(
    "text", ["Human user:\nhi\n\nAI assistant:\nNone", "hi\n\nAI assistant:\nNone\n\n", "Human user:\nhi\n\n"]
)
def test_split_input_rejects_text_not_in_the_format(text):
    with pytest.raises(PromptFormatError, match="not a GuardReasoner input"):
        split_input(text)
    with pytest.raises(PromptFormatError, match="instruction"):
        split_prompt(text)


def test_answer_block_is_what_the_parser_reads():
    block = answer_block({Task.PROMPT_HARMFULNESS: "harmful", Task.RESPONSE_REFUSAL: "refusal"})
    assert block == "Answers: \nRequest: harmful\nCompletion: refusal\nResponse: None\n"
    verdict = parse_output(block, has_response=False)
    assert verdict.prompt_harmfulness == "harmful" and verdict.parse_status.value == "ok"


class ChatTokenizer:
    """Enough of a tokenizer to see what the prompt helpers ask of it."""

    eos_token_id, unk_token_id = 2, 0

    def __init__(self):
        self.calls = []

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert not tokenize and add_generation_prompt
        return "<s><user>" + "".join(m["content"] for m in messages if m["role"] == "user") + "<assistant>"

    def __call__(self, text, add_special_tokens):
        self.calls.append((text, add_special_tokens))
        return {"input_ids": [1] * add_special_tokens + [ord(c) for c in text]}

    def convert_tokens_to_ids(self, token):
        return 9 if token == "<|eot_id|>" else self.unk_token_id


def test_render_and_encode_raw_and_chat():
    tokenizer = ChatTokenizer()
    assert render_chat(tokenizer, "hi") == "<s><user>hi<assistant>" == render_prompt(tokenizer, "hi", "chat")
    assert render_prompt(tokenizer, "hi", "raw") == "hi"
    assert encode_prompt(tokenizer, "hi", "raw") == [1, ord("h"), ord("i")]  # BOS from the tokenizer
    assert encode_prompt(tokenizer, "hi", "chat")[:3] == [ord(c) for c in "<s>"]  # BOS from the template only
    assert tokenizer.calls == [("hi", True), ("<s><user>hi<assistant>", False)]


def test_an_encoded_prompt_is_not_encoded_again():
    tokenizer = ChatTokenizer()
    prompt = EncodedPrompt(build_prompt("hi"), [5, 6, 7])
    assert prompt == build_prompt("hi") and isinstance(prompt, str)
    assert encode_prompt(tokenizer, prompt, "chat") == [5, 6, 7] and tokenizer.calls == []


def test_stop_tokens_add_the_end_of_turn_token_for_chat_only():
    tokenizer = ChatTokenizer()
    assert stop_token_ids(tokenizer, "raw", [2, 3]) == {2, 3}
    assert stop_token_ids(tokenizer, "chat", None) == {2, 9}
