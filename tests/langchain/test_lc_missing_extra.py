"""Without LangChain installed, importing the adapter raises MissingExtraError naming the extra."""

from __future__ import annotations

import importlib
import sys

import pytest
from guardreasoner import MissingExtraError


@pytest.mark.parametrize(
    ("hidden", "package"), [("langchain_core", "langchain-core"), ("langchain", "langchain")]
)
def test_import_without_the_framework_names_the_langchain_extra(monkeypatch, hidden, package):
    for name in [
        n for n in sys.modules if n == "langchain_guardreasoner" or n.startswith("langchain_guardreasoner.")
    ]:
        monkeypatch.delitem(sys.modules, name)
    for name in [n for n in sys.modules if n == hidden or n.startswith(hidden + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, hidden, None)  # "import <hidden>" now raises ImportError
    with pytest.raises(MissingExtraError) as caught:
        importlib.import_module("langchain_guardreasoner")
    assert caught.value.extra == "langchain" and caught.value.package == package
    assert 'pip install "guardreasoner[langchain]"' in str(caught.value)
