"""Resumable, verified downloads against the local fake Hub (real huggingface_hub, real HTTP)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from assistant import paths
from assistant.errors import (
    ChecksumMismatch,
    DownloadCancelled,
    GatedRepoError,
    NetworkError,
    NotEnoughDiskSpace,
    RepoNotFound,
)
from assistant.models import downloads, hub
from assistant.models.download_queue import DownloadJob, DownloadQueue
from assistant.models.downloads import Progress
from assistant.models.gguf_info import read_gguf_info
from tests.tinymodel import write_tiny_model

if TYPE_CHECKING:
    from tests.hfserver import HFServer

# The hf_server fixture (a plugin, so pytest rewrites its asserts and nothing is imported twice).
pytest_plugins = ["tests.hfserver"]

REPO = "tests/Tiny-GGUF"
FILE = "tiny-F32.gguf"


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real, loadable GGUF of about 3.6 MB."""
    path = write_tiny_model(tmp_path_factory.mktemp("m") / FILE, n_embd=256, n_ff=256, n_layers=2)
    return path.read_bytes()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(downloads, "RETRY_BASE_DELAY", 0.01)


@pytest.fixture
def server(hf_server: HFServer, model_bytes: bytes) -> HFServer:
    hf_server.add_repo(REPO, {FILE: model_bytes})
    return hf_server


def _installed() -> list[str]:
    return sorted(p.name for p in paths.models_dir().iterdir())


def _partials() -> list[str]:
    return sorted(p.name for p in paths.partial_dir().iterdir())


def test_download_verifies_and_installs(server: HFServer, model_bytes: bytes) -> None:
    seen: list[Progress] = []
    path = downloads.download_file(REPO, FILE, progress=seen.append)
    assert path == paths.models_dir() / FILE
    assert path.read_bytes() == model_bytes
    assert read_gguf_info(path).n_layers == 2
    assert _partials() == []
    assert seen[-1].done == seen[-1].total == len(model_bytes)
    assert all(a.done <= b.done for a, b in zip(seen, seen[1:], strict=False))
    # The body came from the "CDN" after huggingface_hub's HEAD stopped at the 302.
    assert [h.method for h in server.log if h.filename == FILE][:1] == ["HEAD"]
    assert server.body_bytes(FILE) == len(model_bytes)
    # A second pull finds it installed and transfers nothing.
    downloads.download_file(REPO, FILE)
    assert server.body_bytes(FILE) == len(model_bytes)


def test_dropped_connection_resumes_with_range(server: HFServer, model_bytes: bytes) -> None:
    size = len(model_bytes)
    server.drop_after(FILE, size // 3, times=2)  # two drops in a row, then a clean transfer
    path = downloads.download_file(REPO, FILE)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(model_bytes).hexdigest()
    gets = server.body_gets(FILE)
    assert [g.range for g in gets] == [
        "bytes=0-",
        f"bytes={size // 3}-",
        f"bytes={2 * (size // 3)}-",
    ]
    resent = server.body_bytes(FILE) - size
    assert resent < size * 0.01


def test_resume_after_restart_from_bytes_on_disk(
    server: HFServer, model_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = len(model_bytes)
    # No retries: the connection drop ends the "session" like a crash or a closed app would.
    monkeypatch.setattr(downloads, "MAX_RETRIES", 0)
    server.drop_after(FILE, size // 2)
    with pytest.raises(NetworkError):
        downloads.download_file(REPO, FILE)
    assert _installed() == []
    [pending] = downloads.pending()
    assert (pending.repo, pending.filename, pending.size, pending.done) == (
        REPO,
        FILE,
        size,
        size // 2,
    )

    path = downloads.download_file(REPO, FILE)  # a new run: re-hashes the partial, fetches the rest
    assert path.read_bytes() == model_bytes
    assert server.body_gets(FILE)[-1].range == f"bytes={size // 2}-"
    assert server.body_bytes(FILE) - size < size * 0.01
    assert downloads.pending() == []


def test_stale_partial_of_another_file_is_discarded(server: HFServer, model_bytes: bytes) -> None:
    part = downloads.partial_path(REPO, FILE)
    part.write_bytes(b"x" * 1000)
    stale = {"repo": REPO, "filename": FILE, "size": 5, "sha256": "0" * 64, "commit": "old"}
    (part.parent / (part.name + ".json")).write_text(json.dumps(stale))
    path = downloads.download_file(REPO, FILE)
    assert path.read_bytes() == model_bytes


def test_server_error_once_then_success(server: HFServer, model_bytes: bytes) -> None:
    server.fail(FILE, 500, times=1)
    retries: list[Progress] = []
    path = downloads.download_file(
        REPO, FILE, progress=lambda p: retries.append(p) if p.status == "retrying" else None
    )
    assert path.read_bytes() == model_bytes
    assert [g.status for g in server.body_gets(FILE)] == [500, 206]
    assert len(retries) == 1


def test_persistent_server_error_gives_up(
    server: HFServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(downloads, "MAX_RETRIES", 2)
    server.fail(FILE, 503, times=-1)
    with pytest.raises(NetworkError, match="HTTP 503"):
        downloads.download_file(REPO, FILE)
    assert len(server.body_gets(FILE)) == 3
    assert _installed() == []


def test_missing_file_and_repo(server: HFServer) -> None:
    with pytest.raises(RepoNotFound, match="nope.gguf was not found"):
        downloads.download_file(REPO, "nope.gguf")
    with pytest.raises(RepoNotFound, match="nobody/nothing"):
        downloads.download_file("nobody/nothing", FILE)
    assert server.body_gets(FILE) == []


@pytest.mark.parametrize("status", [401, 403])
def test_gated_repo_needs_token(
    server: HFServer, model_bytes: bytes, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.repos[REPO].gated = status
    server.required_token = "hf_secret"
    with pytest.raises(GatedRepoError, match="accept its license on huggingface.co and add a"):
        downloads.download_file(REPO, FILE)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert downloads.download_file(REPO, FILE).read_bytes() == model_bytes
    # The token went to the Hub, never to the CDN on the other origin.
    assert all(not h.authorization for h in server.body_gets(FILE))
    assert any(h.authorization for h in server.log if h.method == "HEAD")


def test_checksum_mismatch_leaves_nothing(server: HFServer) -> None:
    server.corrupt(REPO, FILE)
    with pytest.raises(ChecksumMismatch, match="checksum does not match"):
        downloads.download_file(REPO, FILE)
    assert _installed() == []
    assert _partials() == []


def test_not_enough_disk_space_refused_before_first_byte(
    server: HFServer, model_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    needed = len(model_bytes) + downloads.DISK_MARGIN
    monkeypatch.setattr(downloads, "disk_free", lambda _path: needed - 1)
    with pytest.raises(NotEnoughDiskSpace, match="Not enough disk space"):
        downloads.download_file(REPO, FILE)
    assert server.body_gets(FILE) == []
    assert _installed() == []
    monkeypatch.setattr(downloads, "disk_free", lambda _path: needed)
    assert downloads.download_file(REPO, FILE).exists()


def test_slow_download_cancelled_then_resumed(server: HFServer, model_bytes: bytes) -> None:
    size = len(model_bytes)
    # Half the file, then the server waits: the cancel surely lands midway, however slow the
    # machine (a trickle can arrive all at once to a client starved of CPU).
    server.hold_after(FILE, size // 2)
    cancel = threading.Event()
    part = downloads.partial_path(REPO, FILE)

    def cancel_when_half_is_written() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if part.exists() and part.stat().st_size >= size // 2:
                break
            time.sleep(0.01)
        cancel.set()

    threading.Thread(target=cancel_when_half_is_written, daemon=True).start()
    with pytest.raises(DownloadCancelled):
        downloads.download_file(REPO, FILE, cancel=cancel)
    server.release()
    kept = part.stat().st_size
    assert kept == size // 2
    assert _installed() == []

    path = downloads.download_file(REPO, FILE)  # full speed now
    assert path.read_bytes() == model_bytes
    assert server.body_gets(FILE)[-1].range == f"bytes={kept}-"
    assert not part.exists()


def test_split_variant_downloads_all_parts(hf_server: HFServer, model_bytes: bytes) -> None:
    third = len(model_bytes) // 3
    chunks = [model_bytes[:third], model_bytes[third : 2 * third], model_bytes[2 * third :]]
    names = [f"big-Q8_0-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    hf_server.add_repo("tests/Big-GGUF", dict(zip(names, chunks, strict=True)))
    [variant] = hub.repo_view("tests/Big-GGUF").variants
    assert variant.is_split and variant.quantization == "Q8_0"
    hf_server.drop_after(names[1], 1000)
    seen: list[Progress] = []
    path = downloads.download_variant(variant, progress=seen.append)
    assert path.name == names[0]
    assert _installed() == sorted(names)
    assert b"".join((paths.models_dir() / n).read_bytes() for n in names) == model_bytes
    assert {p.part for p in seen} == {1, 2, 3} and seen[-1].done == len(model_bytes)


def test_queue_pause_resume_cancel(server: HFServer, model_bytes: bytes) -> None:
    [variant] = hub.repo_view(REPO).variants
    # The server holds the rest back until released: the pause surely lands midway.
    server.hold_after(FILE, 100_000)
    started = threading.Event()
    states: list[str] = []

    def on_change(job: DownloadJob) -> None:
        states.append(job.state)
        if job.progress and job.progress.done > 0:  # reports are throttled: any will do
            started.set()

    queue = DownloadQueue(on_change)
    try:
        job = queue.add(variant)
        assert queue.add(variant) is job  # no duplicates
        assert started.wait(10)
        queue.pause(job)
        assert queue.wait(job, 10) and job.state == "paused"
        assert downloads.partial_path(REPO, FILE).exists()
        server.release()
        queue.resume(job)
        assert queue.wait(job, 10) and job.state == "done", job.error
        assert job.path is not None and job.path.read_bytes() == model_bytes
        assert "paused" in states and states[-1] == "done"

        # Cancel deletes the partial.
        job.path.unlink()
        server.released.clear()
        server.hold_after(FILE, 100_000)
        started.clear()
        job2 = queue.add(variant)
        assert started.wait(10)
        queue.cancel(job2)
        assert queue.wait(job2, 10) and job2.state == "cancelled"
        assert not downloads.partial_path(REPO, FILE).exists()
        assert _installed() == []
    finally:
        queue.close()


def test_queue_reports_failures(hf_server: HFServer) -> None:
    variant = hub.ModelVariant(
        "nobody/nothing", "Q4_K_M", (hub.RemoteFile("x-Q4_K_M.gguf", 1, None),)
    )
    queue = DownloadQueue()
    try:
        job = queue.add(variant)
        assert queue.wait(job, 10)
        assert job.state == "failed" and "not found" in (job.error or "")
    finally:
        queue.close()


def test_partial_file_name_is_stable() -> None:
    p = downloads.partial_path("bartowski/Qwen2.5-7B-Instruct-GGUF", "sub/Qwen-Q4_K_M.gguf")
    assert p.parent == paths.partial_dir()
    assert p.name == "bartowski--Qwen2.5-7B-Instruct-GGUF--sub--Qwen-Q4_K_M.gguf.part"
    assert isinstance(p, Path)


def test_pause_is_prompt_even_when_the_server_stalls(server: HFServer) -> None:

    server.trickle(FILE, chunk=65536, delay=30, times=1)  # one chunk, then 30 s of silence
    cancel = threading.Event()

    def progress(p: Progress) -> None:
        if p.done > 0:
            threading.Timer(0.3, cancel.set).start()

    t0 = time.monotonic()
    with pytest.raises(DownloadCancelled):
        downloads.download_file(REPO, FILE, progress=progress, cancel=cancel)
    assert time.monotonic() - t0 < 5
    assert downloads.partial_path(REPO, FILE).stat().st_size == 65536


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_disk_filling_up_midway_is_a_clear_error(server: HFServer) -> None:
    """A disk that fills up during the transfer (writes fail with ENOSPC): a clear message,
    nothing installed, and the app's download machinery carries on."""
    resolved = downloads.resolve(REPO, FILE)
    part = downloads.partial_path(REPO, FILE)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.symlink_to("/dev/full")  # every write to it fails with "No space left on device"
    downloads._write_sidecar(part, resolved)
    with pytest.raises(NotEnoughDiskSpace, match="disk filled up"):
        downloads.download_file(REPO, FILE)
    assert _installed() == []
    part.unlink()
    assert downloads.download_file(REPO, FILE).exists()  # with space again, it completes
