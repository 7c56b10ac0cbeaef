"""Finding a model: a local directory or a hub id, and the prompt format it was trained with.

A model trained by ``guardreasoner-training`` records its prompt format in ``guardreasoner.json`` in its
output directory, so the guard always runs a model the way it was trained. The released models have no such
file and are run on raw text.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from guardreasoner.errors import ModelNotFoundError
from guardreasoner.prompt import PromptFormat

DEFAULT_MODEL = "yueliu1999/GuardReasoner-1B"
RELEASED_MODELS = tuple(f"yueliu1999/GuardReasoner-{size}" for size in ("1B", "3B", "8B"))
FORMAT_FILE = "guardreasoner.json"


@dataclass(frozen=True)
class ModelSource:
    model_id: str
    """What the user asked for: a hub id or a path."""
    path: str
    """A local directory holding config, weights and tokenizer."""
    prompt_format: PromptFormat


def write_model_card(
    directory: str | os.PathLike[str], prompt_format: PromptFormat | str, **extra: object
) -> Path:
    """Record how a model must be prompted (called by training when it saves a model)."""
    path = Path(directory) / FORMAT_FILE
    payload = {"prompt_format": PromptFormat(prompt_format).value, **extra}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def read_prompt_format(directory: str | os.PathLike[str]) -> PromptFormat:
    """The format recorded in ``directory``, or raw (the released models) when none is recorded."""
    path = Path(directory) / FORMAT_FILE
    if not path.is_file():
        return PromptFormat.RAW
    try:
        value = json.loads(path.read_text(encoding="utf-8"))["prompt_format"]
        return PromptFormat(value)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelNotFoundError(
            f"{path} is not a valid guardreasoner model card ({exc}); it must hold "
            '{"prompt_format": "raw"} or {"prompt_format": "chat"}.'
        ) from exc


def resolve_model(model: str | os.PathLike[str]) -> ModelSource:
    """Turn a hub id or a local path into a local directory, downloading from the hub when allowed."""
    model_id = os.fspath(model)
    if not model_id.strip():
        raise ModelNotFoundError(
            "The model id is empty; pass a hub id such as 'yueliu1999/GuardReasoner-1B' or a path."
        )
    local = Path(model_id).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelNotFoundError(
                f"{local} is a directory but holds no config.json; point --model at a directory saved with "
                "save_pretrained (config.json, weights, tokenizer files)."
            )
        return ModelSource(model_id, str(local.resolve()), read_prompt_format(local))
    if local.exists() or model_id.startswith((".", "/", "~")) or model_id.count("/") != 1:
        raise ModelNotFoundError(
            f"'{model_id}' is neither a local model directory nor a hub id of the form 'owner/name'. "
            f"Pass a directory saved with save_pretrained, or a hub id such as '{DEFAULT_MODEL}'."
        )
    path = _download(model_id)
    return ModelSource(model_id, path, read_prompt_format(path))


def _download(repo_id: str) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    patterns = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]
    try:
        return snapshot_download(repo_id, allow_patterns=patterns)
    except RepositoryNotFoundError as exc:
        raise ModelNotFoundError(
            f"The hub has no model '{repo_id}' (or it is private and no token is set). "
            f"The released guards are {', '.join(RELEASED_MODELS)}."
        ) from exc
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise _unreachable(repo_id, type(exc).__name__) from exc


def check_hub_model(repo_id: str) -> None:
    """Fail fast, before a long load, when ``repo_id`` is neither in the hub cache nor reachable on the hub.

    With ``HF_HUB_OFFLINE`` set only the cache is looked at; otherwise one metadata request with a short timeout
    stands in for the retries a download would make on a machine with no network.
    """
    from huggingface_hub import HfApi, constants, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return
    if constants.HF_HUB_OFFLINE:
        raise _unreachable(repo_id, "HF_HUB_OFFLINE is set")
    try:
        HfApi().model_info(repo_id, timeout=10)
    except GatedRepoError as exc:
        raise ModelNotFoundError(
            f"'{repo_id}' is gated on the hub: accept its licence on its hub page, then log in (hf auth login) "
            "or set HF_TOKEN; or pass --model DIR with a local copy."
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelNotFoundError(
            f"The hub has no model '{repo_id}' (or it is private and no token is set); pass --model DIR or a hub id."
        ) from exc
    except Exception as exc:  # any transport error: no DNS, refused, timed out
        raise _unreachable(repo_id, type(exc).__name__) from exc


def _unreachable(repo_id: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"Could not load '{repo_id}': it is not a local directory, it is not in the hub cache, and the hub "
        f"cannot be reached ({why}). Download it where there is network (hf download {repo_id} --local-dir DIR) "
        "and pass --model DIR, or set HF_HOME to a cache that holds it."
    )
