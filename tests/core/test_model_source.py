"""Finding models: local directories, hub ids while offline, and the recorded prompt format."""

from __future__ import annotations

import json

import pytest
from guardreasoner import ModelNotFoundError, PromptFormat
from guardreasoner.engines import create_engine
from guardreasoner.model_source import FORMAT_FILE, read_prompt_format, resolve_model, write_model_card


def test_unknown_hub_id_offline_names_the_id_and_how_to_use_a_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("yueliu1999/GuardReasoner-1B")
    message = str(caught.value)
    assert "yueliu1999/GuardReasoner-1B" in message
    assert "not a local directory" in message and "--model DIR" in message


def test_missing_local_path_is_not_mistaken_for_a_hub_id(tmp_path):
    with pytest.raises(ModelNotFoundError, match="neither a local model directory nor a hub id"):
        resolve_model(str(tmp_path / "no" / "such" / "model"))
    with pytest.raises(ModelNotFoundError, match="neither a local model directory"):
        resolve_model("./relative-model")
    with pytest.raises(ModelNotFoundError, match="empty"):
        resolve_model("  ")


def test_directory_without_config_is_explained(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_local_directory_resolves_with_its_format(tiny_model_dir):
    source = resolve_model(str(tiny_model_dir))
    assert source.path == str(tiny_model_dir.resolve()) and source.prompt_format is PromptFormat.RAW


def test_recorded_format_is_read_and_validated(tmp_path):
    assert read_prompt_format(tmp_path) is PromptFormat.RAW
    write_model_card(tmp_path, "chat", base_model="meta-llama/Llama-3.2-1B")
    assert json.loads((tmp_path / FORMAT_FILE).read_text())["base_model"] == "meta-llama/Llama-3.2-1B"
    assert read_prompt_format(tmp_path) is PromptFormat.CHAT
    (tmp_path / FORMAT_FILE).write_text('{"prompt_format": "alpaca"}')
    with pytest.raises(ModelNotFoundError, match="not a valid guardreasoner model card"):
        read_prompt_format(tmp_path)


@pytest.mark.slow
def test_chat_trained_model_is_run_with_its_template(tmp_path):
    from guardreasoner.testing import build_tiny_llama

    directory = build_tiny_llama(tmp_path / "chat-model")
    write_model_card(directory, PromptFormat.CHAT)
    engine = create_engine("hf", str(directory))
    rendered = engine.render("PROMPT")
    assert rendered.startswith(
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nPROMPT<|eot_id|>"
    )
    assert rendered.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    ids = engine.tokenizer(rendered, add_special_tokens=False).input_ids
    assert engine.count_tokens("PROMPT") == len(ids) and ids.count(engine.tokenizer.bos_token_id) == 1
