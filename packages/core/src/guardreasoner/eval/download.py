"""Fetching the paper's benchmark files into a local cache, verified against pinned checksums.

The files come from the ``data/benchmark/`` folder of the paper's public repository. Their SHA-256 sums are
pinned so that a changed upstream file, or a corrupted download, stops the evaluation instead of silently
moving its figures. ``0_4_wild_guard_test.json`` (WildGuardTest) has no pinned sum yet: it was not available
where the sums were recorded, so it is only checked to be a non-empty JSON array, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from guardreasoner.errors import GuardReasonerError

UPSTREAM_REPOSITORY = "yueliu1999/GuardReasoner"
UPSTREAM_REF = "main"
"""The upstream revision the files are fetched from. The checksums below pin the content; replace this with
the commit the checksums were taken from once it is known (it could not be looked up offline)."""
RAW_URL_TEMPLATE = "https://raw.githubusercontent.com/{repository}/{ref}/data/benchmark"
DEFAULT_BASE_URL = RAW_URL_TEMPLATE.format(repository=UPSTREAM_REPOSITORY, ref=UPSTREAM_REF)
BASE_URL_ENV = "GUARDREASONER_DATA_URL"
"""Overrides the base URL (a mirror, or a local server in tests); files are fetched from ``{base}/{file}``."""
DATA_DIR_ENV = "GUARDREASONER_DATA_DIR"
"""Overrides the cache directory the benchmark files are kept in."""

CHECKSUMS: dict[str, tuple[int, str] | None] = {
    "0_0_SimpleSafetyTests.json": (68675, "e06d7653a304d716c75ae7f64efeb2285a689695d3cceffd299a4dcae2c8d315"),
    "0_1_AegisSafetyTest.json": (248820, "29b77db427a683103aa58b633b9118314debd96be2659cbac9234f2352e85bd1"),
    "0_2_OpenAIModeration.json": (
        2173249,
        "e8360f628bb46d4090647868daa6d5f4227ba68c822bc5e4d0c8bc5fcd62853a",
    ),
    "0_3_harmbench_prompt.json": (169168, "754c22fb0a7c1e28844a09b22c3f4ba0c7fde5add2f6940237766c3f5c18b65c"),
    "0_4_wild_guard_test.json": None,
    "0_5_harmbench_response.json": (
        1895629,
        "a54573438606b19e7d4183e71c303412bc0f0143b704c393e0ffa3b9ab75d972",
    ),
    "0_6_xstest_response_harmful.json": (
        683283,
        "c374802e7211650252d0ff71c518823e7d3ebbb0990b9093fa619e46c9709a5b",
    ),
    "0_7_xstest_response_refusal.json": (
        688520,
        "e78ab75ee04f2e3d5b82b863569f3812be7db9594a06cfc3e52436fd838c9bd1",
    ),
    "0_8_toxic_chat.json": (2358517, "e386e4b202f9471e184c78ee24dd88b8700549b31b0f39aeeb9a60a9894d42de"),
    "0_9_safe_rlhf.json": (2152874, "c57b79bbe3c38f6b48a8d776bd86c3b0c0ced7072ad4e19859c17cb5880ea47e"),
    "0_A_beaver_tails.json": (3321867, "34f1e315cfeb348c63b6082dea93db67a8fd67e4fded8ccd2087cabe0a81169b"),
}
"""File name: (size in bytes, SHA-256), or None where no checksum is pinned."""

_CHUNK = 1 << 16


class DownloadError(GuardReasonerError, OSError):
    """A benchmark file could not be fetched, or its content is not what was pinned."""


@dataclass(frozen=True)
class FileStatus:
    name: str
    path: Path
    action: str
    """``present`` (already there and verified), ``downloaded`` or ``failed``."""
    sha256: str | None
    warning: str | None = None
    error: str | None = None


def default_data_dir() -> Path:
    """Where benchmark files are kept: ``$GUARDREASONER_DATA_DIR``, else the user's cache directory."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "guardreasoner" / "benchmark"


def base_url(override: str | None = None) -> str:
    return (override or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


def download_benchmarks(
    directory: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    files: list[str] | None = None,
    timeout: float = 60.0,
    on_file: Callable[[FileStatus], None] | None = None,
) -> list[FileStatus]:
    """Fetch the benchmark files into ``directory``; files already there and verified are kept.

    A file that cannot be fetched or fails verification does not stop the others; at the end
    :class:`DownloadError` lists every failure. The files fetched stay, so a rerun only fetches the rest.
    """
    target = Path(directory).expanduser() if directory is not None else default_data_dir()
    target.mkdir(parents=True, exist_ok=True)
    root = base_url(url)
    names = files or list(CHECKSUMS)
    unknown = [name for name in names if name not in CHECKSUMS]
    if unknown:
        raise DownloadError(
            f"Unknown benchmark file(s): {', '.join(unknown)}. Known: {', '.join(CHECKSUMS)}."
        )
    results = []
    for name in names:
        try:
            status = _fetch(name, target, root, timeout)
        except DownloadError as exc:
            status = FileStatus(name, target / name, "failed", None, error=str(exc))
        results.append(status)
        if on_file is not None:
            on_file(status)
    failed = [status for status in results if status.error]
    if failed:
        details = "\n".join(f"- {status.error}" for status in failed)
        raise DownloadError(f"{len(failed)} of {len(names)} benchmark files could not be fetched:\n{details}")
    return results


def _fetch(name: str, target: Path, root: str, timeout: float) -> FileStatus:
    path = target / name
    if path.is_file():
        digest = _sha256(path)
        try:
            warning = _verify(name, path, digest, source=str(path))
        except DownloadError:
            pass  # not the pinned content (an old or broken copy): fetch it again
        else:
            return FileStatus(name, path, "present", digest, warning)
    address = f"{root}/{name}"
    descriptor, partial_name = tempfile.mkstemp(dir=target, prefix=f".{name}.", suffix=".part")
    partial = Path(partial_name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            digest = _stream(address, handle, timeout)
        warning = _verify(name, partial, digest, source=address)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return FileStatus(name, path, "downloaded", digest, warning)


def _stream(address: str, handle, timeout: float) -> str:
    """Copy ``address`` into ``handle``, returning the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(address, timeout=timeout) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                handle.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(
            f"Could not fetch {address}: {exc}. Check the network, or point --base-url (or ${BASE_URL_ENV}) at a "
            "mirror of the paper repository's data/benchmark folder, or copy the files into the data directory."
        ) from exc
    return digest.hexdigest()


def _verify(name: str, path: Path, digest: str, *, source: str) -> str | None:
    """Raise unless the file is the pinned content; return a warning for files without a pinned sum."""
    pinned = CHECKSUMS[name]
    if pinned is None:
        try:
            content = json.loads(path.read_bytes())
        except ValueError as exc:
            raise DownloadError(
                f"{source} is not valid JSON ({exc}); it cannot be the benchmark file {name}."
            ) from exc
        if not isinstance(content, list) or not content:
            raise DownloadError(
                f"{source} is not a non-empty JSON array; it cannot be the benchmark file {name}."
            )
        return f"{name} has no pinned checksum; it was only checked to be a JSON array (sha256 {digest})."
    size, expected = pinned
    if digest != expected:
        raise DownloadError(
            f"Checksum mismatch for {name} from {source}: expected sha256 {expected} ({size} bytes), got {digest} "
            f"({path.stat().st_size} bytes). The upstream file changed or the download was corrupted; figures on "
            "it would not be comparable with the paper's. Retry, or use a mirror holding the original file."
        )
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
