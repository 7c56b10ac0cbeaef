"""R-SFT end to end on a tiny model: the loss falls, and the core then runs the tuned model to the trained verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _training_helpers import case_records, cpu_args
from guardreasoner.engines.hf import HFEngine
from guardreasoner.guard import GuardReasoner
from guardreasoner.testing import TINY_GUARD_CASES
from guardreasoner_training.errors import TrainingDataError
from guardreasoner_training.rsft import RSFTConfig, RSFTTrainer, build_sft_dataset, train_rsft
from transformers import AutoTokenizer, TrainerCallback


class StopWhenLearned(TrainerCallback):
    """Stops once the answer-only loss is small enough for greedy decoding to reproduce the answers."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and logs.get("loss", 1.0) < 0.02 and logs.get("mean_token_accuracy", 0.0) >= 1.0:
            control.should_training_stop = True


@pytest.fixture(scope="module")
def tuned(small_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """The tiny Llama after R-SFT (raw format, full batch, constant lr) on the five cases."""
    out = tmp_path_factory.mktemp("rsft")
    config = RSFTConfig(
        **cpu_args(out),
        per_device_train_batch_size=5,
        max_steps=150,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        prompt_format="raw",
    )
    history: list[dict] = []

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            history.append(dict(logs or {}))

    saved = train_rsft(case_records(), str(small_llama_dir), config, callbacks=[StopWhenLearned(), Record()])
    return saved, [h for h in history if "loss" in h]


def test_loss_goes_down(tuned):
    _, history = tuned
    assert len(history) >= 5
    assert history[-1]["loss"] < 0.05 < 2.0 < history[0]["loss"]


def test_saved_directory_records_the_format(tuned):
    saved, _ = tuned
    card = json.loads((saved / "guardreasoner.json").read_text())
    assert card["prompt_format"] == "raw" and card["stage"] == "rsft"
    assert (saved / "config.json").is_file() and (saved / "tokenizer.json").is_file()


def test_core_runs_the_tuned_model_to_the_trained_verdicts(tuned):
    saved, _ = tuned
    with GuardReasoner(saved, engine="hf", max_new_tokens=96) as guard:
        verdicts = guard.classify_batch([(case.prompt, case.response) for case in TINY_GUARD_CASES])
    for case, verdict in zip(TINY_GUARD_CASES, verdicts, strict=True):
        assert verdict.is_usable, verdict.raw_output
        assert verdict.prompt_harmfulness == case.prompt_harmfulness
        assert verdict.response_refusal == case.response_refusal
        assert verdict.response_harmfulness == case.response_harmfulness


@pytest.mark.parametrize("prompt_format", ["raw", "chat"])
def test_loss_is_on_the_answer_only_and_prompt_tokens_match_the_engine(
    small_llama_dir, tmp_path, prompt_format
):
    config = RSFTConfig(
        **cpu_args(tmp_path), max_steps=1, prompt_format=prompt_format, chat_template="tokenizer"
    )
    records = case_records()
    trainer = RSFTTrainer(str(small_llama_dir), args=config, train_dataset=build_sft_dataset(records))
    tokenizer = trainer.processing_class
    engine = HFEngine(model=trainer.model, tokenizer=tokenizer, prompt_format=prompt_format)
    for record, example in zip(records, trainer.train_dataset, strict=True):
        prompt_ids = engine.encode(record.prompt)  # exactly what the core feeds the model at inference
        ids, labels = example["input_ids"], example["labels"]
        assert ids[: len(prompt_ids)] == prompt_ids
        assert all(label == -100 for label in labels[: len(prompt_ids)])
        answer = [label for label in labels[len(prompt_ids) :]]
        assert answer == ids[len(prompt_ids) :] and -100 not in answer
        stop = (
            tokenizer.convert_tokens_to_ids("<|eot_id|>")
            if prompt_format == "chat"
            else tokenizer.eos_token_id
        )
        assert answer[-1] == stop
        assert tokenizer.decode(answer, skip_special_tokens=True).strip() == record.output.strip()


def test_chat_model_card_and_stop_token(small_llama_dir, tmp_path):
    config = RSFTConfig(**cpu_args(tmp_path), max_steps=1, prompt_format="chat", chat_template="llama3")
    trainer = RSFTTrainer(str(small_llama_dir), args=config, train_dataset=build_sft_dataset(case_records()))
    trainer.train()
    saved = trainer.save_final_model()
    assert json.loads((saved / "guardreasoner.json").read_text())["prompt_format"] == "chat"
    eot = AutoTokenizer.from_pretrained(saved).convert_tokens_to_ids("<|eot_id|>")
    generation = json.loads((saved / "generation_config.json").read_text())
    assert eot in generation["eos_token_id"]
    # the llama3 template (LLaMA-Factory's: no system turn, untrimmed) is saved with the tokenizer
    assert "trim" not in AutoTokenizer.from_pretrained(saved).chat_template


def test_cutoff_truncates_padding_free_batches(small_llama_dir, tmp_path):
    def trainer(cutoff):
        config = RSFTConfig(
            **cpu_args(tmp_path),
            max_steps=1,
            cutoff_len=cutoff,
            padding_free=True,
            per_device_train_batch_size=5,
        )
        return RSFTTrainer(str(small_llama_dir), args=config, train_dataset=build_sft_dataset(case_records()))

    full = trainer(None).train_dataset
    prompt_lengths = [
        example["labels"].index(next(x for x in example["labels"] if x != -100)) for example in full
    ]
    cutoff = max(prompt_lengths) + 3  # every example keeps at least 3 answer tokens
    cut = trainer(cutoff)
    lengths = [len(example["input_ids"]) for example in cut.train_dataset]
    assert len(lengths) == 5 and max(lengths) == cutoff
    assert lengths == [min(len(example["input_ids"]), cutoff) for example in full]
    batch = cut.data_collator([cut.train_dataset[i] for i in range(5)])
    assert batch["input_ids"].shape == (1, sum(lengths)) and "attention_mask" not in batch
    assert batch["position_ids"][0, : lengths[0]].tolist() == list(range(lengths[0]))


def test_dataset_without_text_columns_is_refused(small_llama_dir, tmp_path):
    from datasets import Dataset

    config = RSFTConfig(**cpu_args(tmp_path), max_steps=1)
    with pytest.raises(TrainingDataError, match="'prompt' and 'completion'"):
        RSFTTrainer(str(small_llama_dir), args=config, train_dataset=Dataset.from_list([{"text": "hello"}]))
