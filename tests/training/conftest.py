"""Fixtures for the training tests: GuardReasonerTrain-format records of the tiny guard's cases, tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
from _training_helpers import case_records
from guardreasoner_training.records import TrainRecord


@pytest.fixture
def records() -> list[TrainRecord]:
    return case_records()


@pytest.fixture(scope="session")
def small_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The core's tiny random Llama (hidden 128) with its locally trained tokenizer and chat template."""
    from guardreasoner.testing import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("small-llama"), hidden_size=128, intermediate_size=256)
