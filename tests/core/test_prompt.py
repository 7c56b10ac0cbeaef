"""The prompt must be byte-identical to what the released models were evaluated on."""

from __future__ import annotations

import json

import pytest
from guardreasoner.prompt import INSTRUCTION, build_input, build_messages, build_prompt

# Prediction folder -> benchmark file, and whether the set has AI responses.
DATASETS = {
    "SimpleSafetyTests": ("0_0_SimpleSafetyTests", False),
    "AegisSafetyTest": ("0_1_AegisSafetyTest", False),
    "HarmBenchPrompt": ("0_3_harmbench_prompt", False),
    "HarmBenchResponse": ("0_5_harmbench_response", True),
    "XSTestReponseHarmful": ("0_6_xstest_response_harmful", True),
    "XSTestResponseRefusal": ("0_7_xstest_response_refusal", True),
}
HEAD, MIDDLE, TAIL = "Human user:\n", "\n\nAI assistant:\n", "\n\n"


def _split(conversation_input: str, has_response: bool) -> tuple[str, str | None]:
    assert conversation_input.startswith(HEAD) and conversation_input.endswith(TAIL)
    body = conversation_input[len(HEAD) : -len(TAIL)]
    prompt, response = body.rsplit(MIDDLE, 1)
    if not has_response:
        assert response == "None"
        return prompt, None
    return prompt, response


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
            prompt, response = _split(record["input"], has_response)
            assert build_prompt(prompt, response).encode() == prediction["prompt"].encode()
            checked += 1
    assert checked == 2195


def test_no_response_is_the_literal_none():
    assert build_input("hi") == "Human user:\nhi\n\nAI assistant:\nNone\n\n"
    assert build_prompt("hi", "hello").endswith("Human user:\nhi\n\nAI assistant:\nhello\n\n")
    assert build_prompt("hi").startswith(INSTRUCTION + "\nHuman user:")


def test_chat_messages_carry_the_raw_prompt_as_one_user_turn():
    assert build_messages("hi", "yo") == [{"role": "user", "content": build_prompt("hi", "yo")}]
