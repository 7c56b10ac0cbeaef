"""Without llama-index-core installed, importing the adapter raises MissingExtraError naming the extra."""

from __future__ import annotations

import importlib
import sys

import pytest
from guardreasoner import MissingExtraError


def test_import_without_the_framework_names_the_llamaindex_extra(monkeypatch):
    # The adapter lives in the llama_index namespace package, which exists without llama-index-core; what
    # is missing then is llama_index.core.
    for name in list(sys.modules):
        if name.startswith(("llama_index.core", "llama_index.postprocessor.guardreasoner")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(
        sys.modules, "llama_index.core", None
    )  # "import llama_index.core..." raises ImportError
    with pytest.raises(MissingExtraError) as caught:
        importlib.import_module("llama_index.postprocessor.guardreasoner")
    assert caught.value.extra == "llamaindex" and caught.value.package == "llama-index-core"
    assert 'pip install "guardreasoner[llamaindex]"' in str(caught.value)
