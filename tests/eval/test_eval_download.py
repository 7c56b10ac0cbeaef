"""``data download`` against a local HTTP server on 127.0.0.1 serving a temporary copy of the benchmark files."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading

import pytest
from guardreasoner.eval import download as datasets
from guardreasoner.eval.download import CHECKSUMS, DownloadError, download_benchmarks

pytestmark = pytest.mark.network_loopback

SMALL = ["0_0_SimpleSafetyTests.json", "0_3_harmbench_prompt.json"]
WILDGUARD = "0_4_wild_guard_test.json"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path, shared_data):
    """A folder served at a URL: it starts with copies of two real benchmark files."""
    root = tmp_path / "served"
    root.mkdir()
    for name in SMALL:
        shutil.copy(shared_data / "benchmark" / name, root / name)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_pinned_checksums_match_the_reference_copies(shared_data):
    for name, pinned in CHECKSUMS.items():
        path = shared_data / "benchmark" / name
        if pinned is None:
            assert name == WILDGUARD and not path.exists()
            continue
        size, sha256 = pinned
        assert (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()) == (size, sha256), name


def test_downloads_verifies_then_keeps_verified_files(served, tmp_path):
    _, url = served
    target = tmp_path / "cache"
    first = download_benchmarks(target, url=url, files=SMALL)
    assert [(s.name, s.action, s.warning) for s in first] == [(name, "downloaded", None) for name in SMALL]
    assert [s.sha256 for s in first] == [CHECKSUMS[name][1] for name in SMALL]
    second = download_benchmarks(target, url=url, files=SMALL)
    assert [s.action for s in second] == ["present", "present"]
    assert sorted(p.name for p in target.iterdir()) == SMALL  # no partial files left behind


def test_a_changed_file_is_refused_and_nothing_is_written(served, tmp_path):
    root, url = served
    (root / SMALL[0]).write_text("[]")
    target = tmp_path / "cache"
    with pytest.raises(
        DownloadError, match=f"Checksum mismatch for {SMALL[0]}.*expected sha256 {CHECKSUMS[SMALL[0]][1]}"
    ):
        download_benchmarks(target, url=url, files=SMALL[:1])
    assert list(target.iterdir()) == []


def test_a_corrupted_cached_file_is_fetched_again(served, tmp_path):
    _, url = served
    target = tmp_path / "cache"
    target.mkdir()
    (target / SMALL[0]).write_text("truncated")
    (status,) = download_benchmarks(target, url=url, files=SMALL[:1])
    assert status.action == "downloaded"
    assert hashlib.sha256((target / SMALL[0]).read_bytes()).hexdigest() == CHECKSUMS[SMALL[0]][1]


def test_the_unpinned_wildguard_file_is_checked_as_json_and_warned_about(served, tmp_path):
    root, url = served
    (root / WILDGUARD).write_text(json.dumps([{"instruction": "i", "input": "x", "output": "x"}]))
    (status,) = download_benchmarks(tmp_path / "cache", url=url, files=[WILDGUARD])
    assert status.action == "downloaded" and "no pinned checksum" in status.warning
    (root / WILDGUARD).write_text("<html>not found</html>")
    with pytest.raises(DownloadError, match="not valid JSON"):
        download_benchmarks(tmp_path / "other", url=url, files=[WILDGUARD])


def test_a_missing_file_is_an_error_naming_the_url(served, tmp_path):
    _, url = served
    with pytest.raises(DownloadError, match=rf"Could not fetch {url}/0_8_toxic_chat.json.*--base-url"):
        download_benchmarks(tmp_path / "cache", url=url, files=["0_8_toxic_chat.json"])


def test_one_failure_does_not_stop_the_other_files(served, tmp_path):
    _, url = served
    with pytest.raises(DownloadError, match="1 of 2 benchmark files could not be fetched") as error:
        download_benchmarks(tmp_path / "cache", url=url, files=["0_8_toxic_chat.json", SMALL[0]])
    assert "0_8_toxic_chat.json" in str(error.value)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [SMALL[0]]


def test_a_local_folder_can_serve_as_the_source(shared_data, tmp_path):
    source = (shared_data / "benchmark").as_uri()
    statuses = download_benchmarks(tmp_path / "cache", url=source, files=SMALL)
    assert [s.action for s in statuses] == ["downloaded", "downloaded"]


def test_base_url_and_directory_come_from_the_environment(served, tmp_path, monkeypatch):
    _, url = served
    monkeypatch.setenv(datasets.BASE_URL_ENV, url)
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / "env-cache"))
    (status,) = download_benchmarks(files=SMALL[:1])
    assert status.path == tmp_path / "env-cache" / SMALL[0]


def test_cli_download_reports_each_file(served, tmp_path, cli, monkeypatch):
    root, url = served
    (root / WILDGUARD).write_text("[{}]")
    monkeypatch.setattr(datasets, "CHECKSUMS", {name: CHECKSUMS[name] for name in SMALL} | {WILDGUARD: None})
    result = cli("data", "download", "--dir", tmp_path / "cache", "--base-url", url)
    assert result.exit_code == 0, result.output
    assert result.output.count("downloaded") == 3
    assert "Warning:" in result.output and "no pinned checksum" in result.output
    (root / SMALL[1]).write_text("[]")
    (tmp_path / "cache" / SMALL[1]).unlink()
    result = cli("data", "download", "--dir", tmp_path / "cache", "--base-url", url)
    assert result.exit_code == 1
    assert "Checksum mismatch" in result.output
    assert result.output.count("present") == 2 and result.output.count("failed") == 1
