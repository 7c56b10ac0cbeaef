"""Fixtures for the reliability suite: a fake OpenAI-compatible server on loopback and guards bound to it."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _fake_openai import FakeOpenAIServer  # noqa: E402

_nonces = itertools.count(1)


def pytest_addoption(parser):
    parser.addoption(
        "--reliability-full",
        action="store_true",
        default=False,
        help="run the full load test (10,000 requests, 1,000 concurrent); also GUARDREASONER_RELIABILITY_FULL=1",
    )


@pytest.fixture
def server():
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def nonce():
    """A fresh tag for one request: ``nonce()`` gives ``nonce-<hex>``."""
    return lambda: f"nonce-{next(_nonces):08x}"


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    """The tiny Llama's tokenizer, as the served model's: the openai engine finds the label tokens with it."""
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
