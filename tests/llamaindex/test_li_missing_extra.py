"""Without llama-index-core installed, importing the adapter raises MissingExtraError naming the extra."""

from __future__ import annotations

import importlib
import sys

import pytest
from guardreasoner import MissingExtraError


def test_import_without_the_framework_names_the_llamaindex_extra(monkeypatch):
    for name in list(sys.modules):
        if name.split(".")[0] in ("guardreasoner_llamaindex", "llama_index"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "llama_index", None)  # "import llama_index..." now raises ImportError
    with pytest.raises(MissingExtraError) as caught:
        importlib.import_module("guardreasoner_llamaindex")
    assert caught.value.extra == "llamaindex" and caught.value.package == "llama-index-core"
    assert 'pip install "guardreasoner[llamaindex]"' in str(caught.value)
