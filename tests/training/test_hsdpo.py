"""HS-DPO: the weighted loss against trl's own DPOTrainer, and against a hand computation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _training_helpers import case_records, cpu_args
from datasets import Dataset
from guardreasoner_training.errors import TrainingDataError
from guardreasoner_training.hsdpo import HSDPOConfig, HSDPOTrainer, build_preference_dataset, train_hsdpo
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

BETA = 0.01


def make_pairs(weights: list[float]) -> list[dict]:
    pairs = []
    for index, (record, weight) in enumerate(zip(case_records(), weights, strict=False)):
        flipped = (
            record.output.replace("unharmful", "TMP")
            .replace("harmful", "unharmful")
            .replace("TMP", "harmful")
        )
        pairs.append(
            {
                "instruction": record.instruction,
                "input": record.input,
                "chosen": record.output,
                "rejected": flipped + " extra words" * index,  # answers of different lengths
                "sample_weight": weight,
            }
        )
    return pairs


@pytest.fixture(scope="module")
def models(small_llama_dir: Path):
    """A reference model and a policy that differs from it (so the log-ratios are not zero)."""
    torch.manual_seed(0)
    ref = AutoModelForCausalLM.from_pretrained(small_llama_dir, dtype=torch.float32).eval()
    policy = copy.deepcopy(ref)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(0.02 * torch.randn_like(param))
    return policy, ref


def ours(small_llama_dir, models, tmp_path, weights, **config):
    policy, ref = models
    tokenizer = AutoTokenizer.from_pretrained(small_llama_dir)
    args = HSDPOConfig(**cpu_args(tmp_path / "ours"), beta=BETA, **config)
    return HSDPOTrainer(
        copy.deepcopy(policy),
        ref_model=copy.deepcopy(ref),
        args=args,
        train_dataset=build_preference_dataset(make_pairs(weights)),
        processing_class=tokenizer,
    )


def first_batch(trainer, count: int = 4) -> dict:
    return trainer.data_collator([trainer.train_dataset[i] for i in range(count)])


def sequence_logps(model, batch):
    """Per-token answer log-probs from the full logits (no fused head), by hand."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    logps = F.log_softmax(logits.float(), dim=-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    mask = batch["completion_mask"][:, 1:].float()
    return logps * mask, mask


@pytest.mark.parametrize(
    ("sft_weight", "loss_type", "loss_weights"),
    [(0.0, ["sigmoid"], None), (2.0, ["sigmoid", "sft"], [1.0, 2.0])],
)
def test_weights_of_one_give_trl_loss(small_llama_dir, models, tmp_path, sft_weight, loss_type, loss_weights):
    policy, ref = models
    trainer = ours(
        small_llama_dir, models, tmp_path, [1.0] * 4, sft_weight=sft_weight, sft_normalization="token"
    )
    trl_trainer = DPOTrainer(
        copy.deepcopy(policy),
        ref_model=copy.deepcopy(ref),
        args=DPOConfig(
            **cpu_args(tmp_path / "trl"), beta=BETA, loss_type=loss_type, loss_weights=loss_weights
        ),
        train_dataset=Dataset.from_list(
            [
                {k: p[k] for k in ("chosen", "rejected")} | {"prompt": p["instruction"] + "\n" + p["input"]}
                for p in make_pairs([1.0] * 4)
            ]
        ),
        processing_class=AutoTokenizer.from_pretrained(small_llama_dir),
    )
    batch = first_batch(trainer)
    assert batch["sample_weight"].tolist() == [1.0] * 4
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
        expected = trl_trainer.compute_loss(
            trl_trainer.model, {k: v for k, v in batch.items() if k != "sample_weight"}
        )
    assert loss.item() > 0.1
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("normalization", ["sequence", "token"])
def test_weighted_loss_matches_hand_computation(small_llama_dir, models, tmp_path, normalization):
    policy, ref = models
    weights = [0.8, 1.2, 1.0, 0.9]
    trainer = ours(
        small_llama_dir, models, tmp_path, weights, sft_weight=2.0, sft_normalization=normalization
    )
    batch = first_batch(trainer)
    assert batch["sample_weight"].tolist() == pytest.approx(weights)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)

    policy_logps, mask = sequence_logps(policy, batch)
    ref_logps, _ = sequence_logps(ref, batch)
    chosen, rejected = policy_logps.sum(1).chunk(2)
    ref_chosen, ref_rejected = ref_logps.sum(1).chunk(2)
    w = torch.tensor(weights)
    dpo = -F.logsigmoid(BETA * ((chosen - ref_chosen) - (rejected - ref_rejected)))
    chosen_mask = mask.chunk(2)[0]
    nll = -policy_logps.chunk(2)[0].sum(1)
    if normalization == "sequence":
        expected = (w * (dpo + 2.0 * nll / chosen_mask.sum(1))).mean()
    else:
        expected = (w * dpo).mean() + 2.0 * (w * nll).sum() / chosen_mask.sum()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    # and the weights matter: the unweighted loss is different
    assert not torch.isclose(loss, ((dpo + 2.0 * nll / chosen_mask.sum(1)).mean()), rtol=1e-4)


def test_reference_forward_never_sees_the_weights(small_llama_dir, models, tmp_path):
    trainer = ours(small_llama_dir, models, tmp_path, [0.8, 1.2, 1.0, 0.9], sft_weight=2.0)
    seen: list[set[str]] = []
    original = trainer.ref_model.forward

    def spy(*args, **kwargs):
        seen.append(set(kwargs))
        return original(*args, **kwargs)

    trainer.ref_model.forward = spy
    with torch.no_grad():
        trainer.compute_loss(trainer.model, first_batch(trainer))
    assert seen and all("sample_weight" not in keys for keys in seen)


def test_precomputed_reference_gives_the_same_loss(small_llama_dir, models, tmp_path):
    weights = [0.8, 1.2, 1.0, 0.9]
    live = ours(small_llama_dir, models, tmp_path, weights, sft_weight=2.0)
    cached = ours(small_llama_dir, models, tmp_path, weights, sft_weight=2.0, precompute_ref_log_probs=True)
    batch = first_batch(cached)
    assert "ref_chosen_logps" in batch
    with torch.no_grad():
        torch.testing.assert_close(
            cached.compute_loss(cached.model, batch),
            live.compute_loss(live.model, first_batch(live)),
            rtol=1e-5,
            atol=1e-6,
        )


def test_training_runs_and_logs_the_weights(small_llama_dir, tmp_path):
    args = HSDPOConfig(
        **cpu_args(tmp_path / "run"), per_device_train_batch_size=2, max_steps=2, learning_rate=1e-4
    )
    trainer = HSDPOTrainer(
        str(small_llama_dir),
        args=args,
        train_dataset=build_preference_dataset(make_pairs([0.8, 1.2, 1.0, 0.9])),
    )
    trainer.train()
    logged = [h for h in trainer.state.log_history if "sample_weight" in h]
    assert len(logged) == 2 and all(0.8 <= h["sample_weight"] <= 1.2 for h in logged)
    assert all(h["loss/sft"] > 0 and "rewards/margins" in h for h in logged)
    saved = trainer.save_final_model()
    assert (saved / "guardreasoner.json").is_file() and (saved / "config.json").is_file()


def test_config_refuses_trl_loss_mixing(tmp_path):
    with pytest.raises(ValueError, match="sft_weight"):
        HSDPOConfig(**cpu_args(tmp_path), loss_type=["sigmoid", "sft"])
    with pytest.raises(ValueError, match="sft_normalization"):
        HSDPOConfig(**cpu_args(tmp_path), sft_normalization="tokens")


def test_pairs_missing_fields_are_refused(small_llama_dir, tmp_path):
    with pytest.raises(TrainingDataError, match="rejected"):
        train_hsdpo(
            [{"instruction": "i", "input": "x", "chosen": "c"}],
            str(small_llama_dir),
            HSDPOConfig(**cpu_args(tmp_path)),
        )
