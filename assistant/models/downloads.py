"""Resumable, verified model downloads.

huggingface_hub resolves each file (URL, size, LFS sha256, commit); the bytes we transfer
ourselves with HTTP Range requests into a stable partial file, ``partial_dir()/<repo>--<file>.part``
with a JSON sidecar, so a download resumes from the bytes on disk after a dropped connection, an
app restart or a crash (huggingface_hub >= 1.18 deletes its partial file and starts over).
The sha256 is checked before the file is moved into the models folder atomically; a mismatch
deletes the partial so nothing unusable is left behind.

Everything long-running takes a ``progress`` callback and a ``cancel`` threading.Event and never
touches Qt: the GUI runs these in a worker and marshals the callbacks itself.

Over 400 lines: one transfer, step by step (resolve, resume, retry, verify, move into place),
every step working on the same partial file and its sidecar. The queue the GUI uses is
download_queue.py.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from assistant import files, paths
from assistant.errors import (
    AssistantError,
    ChecksumMismatch,
    DownloadCancelled,
    DownloadError,
    InvalidModelFile,
    NetworkError,
    NotEnoughDiskSpace,
)
from assistant.models import hub
from assistant.models.gguf_info import GGUFInfo, IncompleteHeader, parse_gguf_header
from assistant.models.hub import ModelVariant, RemoteFile
from assistant.sizes import human_size

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# Room left on the disk after the download: a full disk breaks the database and the OS too.
DISK_MARGIN = 256 * 2**20
MAX_RETRIES = 6  # consecutive failures without progress before giving up
RESOLVE_RETRIES = 2  # a HEAD that cannot connect at all means offline: say so within seconds
RETRY_BASE_DELAY = 1.0  # seconds; doubles per failure up to RETRY_MAX_DELAY (tests lower it)
RETRY_MAX_DELAY = 30.0
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0  # a stalled CDN connection is dropped and resumed, not waited on forever
PROGRESS_INTERVAL = 0.1
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}

ProgressCallback = Callable[["Progress"], None]


def disk_free(path: Path) -> int:
    """Free bytes on the disk holding ``path`` (module-level so tests can monkeypatch it)."""
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class ResolvedFile:
    repo: str
    filename: str
    url: str  # pinned to the commit, so resumed bytes always come from the same file
    commit: str | None
    size: int
    sha256: str | None


@dataclass(frozen=True)
class Progress:
    filename: str  # the file being transferred now
    done: int  # bytes of the whole variant on disk (all parts)
    total: int
    speed: float  # bytes per second over the last few seconds
    eta: float | None  # seconds left, None while the speed is unknown
    part: int = 1
    parts: int = 1
    status: str = "downloading"  # "checking" (re-hashing a partial), "downloading", "retrying"

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


@dataclass(frozen=True)
class PartialDownload:
    """A download that was interrupted and can be resumed."""

    repo: str
    filename: str
    size: int
    done: int
    path: Path


# ---------------------------------------------------------------------------------------------
# HTTP plumbing


def _httpx():
    try:
        import httpx2 as httpx  # huggingface_hub 2.x
    except ImportError:  # pragma: no cover - huggingface_hub 1.x
        import httpx  # type: ignore[no-redef]
    return httpx


def _session():
    """huggingface_hub's shared client: honours HTTP(S)_PROXY, verifies TLS, blocks offline mode."""
    from huggingface_hub import get_session

    return get_session()


def _headers() -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    from assistant import __version__

    headers = build_hf_headers(
        token=hub.token(), library_name="assistant", library_version=__version__
    )
    headers["Accept-Encoding"] = "identity"  # byte offsets must be offsets into the file
    return headers


def _timeout():
    httpx = _httpx()
    return httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)


class _Transient(Exception):
    """A failure worth retrying (5xx, 429, dropped connection)."""


def _raise_for_status(response, repo: str, filename: str) -> None:
    if response.status_code < 400:
        return
    if response.status_code in _RETRY_STATUS:
        raise _Transient(f"HTTP {response.status_code}")
    from huggingface_hub.utils import hf_raise_for_status

    response.read()
    with hub.translate_errors(repo, filename):
        hf_raise_for_status(response)


def _is_transient(exc: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, (_Transient, _httpx().TransportError)):
        return True
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return exc.response.status_code in _RETRY_STATUS
    return False


def _retrying(
    what: str,
    cancel: threading.Event | None,
    fn: Callable[[], object],
    on_retry: Callable[[int, float], None] | None = None,
    *,
    retries: int | None = None,
    position: Callable[[], int] | None = None,
):
    """Call ``fn`` until it succeeds, backing off exponentially on transient failures.

    ``position`` (bytes on disk) resets the count when an attempt made progress: a long download
    over a flaky line may drop many times and still finish.
    """
    retries = MAX_RETRIES if retries is None else retries
    failures = 0
    last = position() if position else 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not _is_transient(exc):
                raise
            error: BaseException = exc
        if position is not None and position() > last:
            last, failures = position(), 0
        failures += 1
        if failures > retries:
            raise NetworkError(
                f"Could not download {what}: {hub._short(error)}. Check your connection and "
                "try again; the download will resume where it stopped."
            ) from error
        delay = min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2 ** (failures - 1))
        log.warning(
            "%s: %s; retrying in %.1f s (%d/%d)",
            what,
            hub._short(error),
            delay,
            failures,
            MAX_RETRIES,
        )
        if on_retry:
            on_retry(failures, delay)
        if cancel is not None and cancel.wait(delay):
            raise DownloadCancelled(f"The download of {what} was paused.")
        if cancel is None:
            time.sleep(delay)


# ---------------------------------------------------------------------------------------------
# Resolve


def resolve(
    repo: str, filename: str, *, revision: str = "main", cancel: threading.Event | None = None
) -> ResolvedFile:
    """Size, LFS sha256 and commit of a file on the Hub (a HEAD request, no body)."""
    from huggingface_hub import get_hf_file_metadata

    hub.check_online()
    url = hub.file_url(repo, filename, revision)

    def head():
        try:
            return get_hf_file_metadata(
                url,
                token=hub.token(),
                timeout=CONNECT_TIMEOUT,
                endpoint=hub.endpoint(),
                retry_on_errors=False,
            )
        except Exception as exc:
            if _is_transient(exc):
                raise _Transient(hub._short(exc)) from exc
            with hub.translate_errors(repo, filename):
                raise

    meta = _retrying(f"{repo}/{filename}", cancel, head, retries=RESOLVE_RETRIES)
    if meta.size is None:
        raise DownloadError(f"Hugging Face did not report the size of {repo}/{filename}.")
    etag = (meta.etag or "").strip('"').lower()
    sha256 = etag if _SHA256_RE.match(etag) else None
    commit = meta.commit_hash
    return ResolvedFile(
        repo=repo,
        filename=filename,
        url=hub.file_url(repo, filename, commit) if commit else url,
        commit=commit,
        size=int(meta.size),
        sha256=sha256,
    )


# ---------------------------------------------------------------------------------------------
# Partial files


def partial_path(repo: str, filename: str) -> Path:
    safe = f"{repo}--{filename}".replace("/", "--").replace("\\", "--")
    return paths.partial_dir() / f"{safe}.part"


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_sidecar(part: Path) -> dict | None:
    try:
        return json.loads(_sidecar(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_sidecar(part: Path, resolved: ResolvedFile) -> None:
    files.write_private_json(_sidecar(part), dataclasses.asdict(resolved))


def discard(repo: str, filename: str) -> None:
    """Delete a partial download and its sidecar."""
    part = partial_path(repo, filename)
    part.unlink(missing_ok=True)
    _sidecar(part).unlink(missing_ok=True)


def pending() -> list[PartialDownload]:
    """Interrupted downloads on disk, for a "resume" offer after a restart."""
    found = []
    for side in sorted(paths.partial_dir().glob("*.part.json")):
        part = side.with_name(side.name.removesuffix(".json"))
        meta = _read_sidecar(part)
        if not meta or not part.exists():
            continue
        found.append(
            PartialDownload(
                meta["repo"], meta["filename"], int(meta["size"]), part.stat().st_size, part
            )
        )
    return found


def _prepare_partial(resolved: ResolvedFile) -> int:
    """Bytes already on disk for this exact file; a partial of another revision is dropped."""
    part = partial_path(resolved.repo, resolved.filename)
    meta = _read_sidecar(part)
    if part.exists():
        same = (
            meta is not None
            and meta.get("size") == resolved.size
            and (
                (resolved.sha256 and meta.get("sha256") == resolved.sha256)
                or (not resolved.sha256 and meta.get("commit") == resolved.commit)
            )
        )
        if not same or part.stat().st_size > resolved.size:
            log.info("Discarding a stale partial download %s", part)
            part.unlink()
    _write_sidecar(part, resolved)
    return part.stat().st_size if part.exists() else 0


# ---------------------------------------------------------------------------------------------
# Transfer


class _Meter:
    """Progress bookkeeping for a whole variant: speed over a sliding window, throttled calls."""

    def __init__(self, callback: ProgressCallback | None, total: int, parts: int) -> None:
        self.callback = callback
        self.total = total
        self.parts = parts
        self.base = 0  # bytes of earlier parts
        self.samples: collections.deque[tuple[float, int]] = collections.deque()
        self.last_call = 0.0

    def report(
        self,
        filename: str,
        part: int,
        done_in_file: int,
        *,
        status: str = "downloading",
        force: bool = False,
    ) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        done = self.base + done_in_file
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > 3.0:
            self.samples.popleft()
        if not force and now - self.last_call < PROGRESS_INTERVAL:
            return
        self.last_call = now
        t0, d0 = self.samples[0]
        speed = (done - d0) / (now - t0) if now > t0 and status == "downloading" else 0.0
        eta = (self.total - done) / speed if speed > 0 else None
        self.callback(Progress(filename, done, self.total, speed, eta, part, self.parts, status))


def _disk_full(exc: BaseException | None) -> bool:
    """ENOSPC here or earlier in the chain: the flush and fsync after a failed write raise again
    (EINVAL on some devices) and would hide the real cause."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc, seen = exc.__context__, seen + 1
    return False


def _rehash(
    part: Path, hasher, cancel: threading.Event | None, meter: _Meter, filename: str, index: int
) -> int:
    """Feed the bytes already on disk to the hasher (resuming after a restart)."""
    done = 0
    size = part.stat().st_size  # exactly what is on disk now, whatever the file turns out to be
    with part.open("rb") as f:
        while done < size and (chunk := f.read(min(CHUNK * 4, size - done))):
            hasher.update(chunk)
            done += len(chunk)
            meter.report(filename, index, done, status="checking")
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled(f"The download of {filename} was paused.")
    return done


def _transfer(
    resolved: ResolvedFile, cancel: threading.Event | None, meter: _Meter, index: int
) -> Path:
    """Fill the partial file up to ``resolved.size`` and verify it; returns the partial's path."""
    httpx = _httpx()
    part = partial_path(resolved.repo, resolved.filename)
    name = resolved.filename.rsplit("/", 1)[-1]
    what = f"{resolved.repo}/{resolved.filename}"
    hasher = hashlib.sha256()
    done = _rehash(part, hasher, cancel, meter, name, index) if part.exists() else 0

    def attempt() -> None:
        nonlocal done, hasher
        if done >= resolved.size:
            return
        headers = _headers()
        headers["Range"] = f"bytes={done}-"
        with (
            _session().stream(
                "GET", resolved.url, headers=headers, timeout=_timeout(), follow_redirects=True
            ) as r,
            _interrupt_on_cancel(r, cancel),
        ):
            _raise_for_status(r, resolved.repo, resolved.filename)
            if r.status_code == 200 and done > 0:
                # The server ignored Range: start over rather than append the file to itself.
                log.warning("%s: server ignored the Range header; restarting", what)
                done, hasher = 0, hashlib.sha256()
                mode = "wb"
            elif r.status_code == 206:
                start = _content_range_start(r.headers.get("Content-Range"))
                if start != done:
                    raise _Transient(f"server sent bytes from {start}, not {done}")
                mode = "ab"
            else:
                mode = "wb" if done == 0 else "ab"
            files.create_private_file(part)  # what is being downloaded is nobody else's business
            with part.open(mode) as f:
                try:
                    # No chunk_size: a chunk buffered inside httpx would be lost (and re-sent)
                    # when the connection drops; every byte received reaches the disk.
                    for chunk in r.iter_raw():
                        if done + len(chunk) > resolved.size:
                            chunk = chunk[: resolved.size - done]
                        f.write(chunk)
                        hasher.update(chunk)
                        done += len(chunk)
                        meter.report(name, index, done)
                        if cancel is not None and cancel.is_set():
                            raise DownloadCancelled(f"The download of {name} was paused.")
                        if done >= resolved.size:
                            break
                finally:
                    f.flush()
                    os.fsync(f.fileno())
        if done < resolved.size:
            raise _Transient(f"connection closed at {done:,} of {resolved.size:,} bytes")

    def on_retry(_failures: int, _delay: float) -> None:
        meter.report(name, index, done, status="retrying", force=True)

    def guarded() -> None:
        try:
            attempt()
        except (_Transient, DownloadCancelled, AssistantError):
            raise
        except (httpx.TransportError, OSError) as exc:
            if cancel is not None and cancel.is_set():  # the watchdog cut the connection
                raise DownloadCancelled(f"The download of {name} was paused.") from exc
            if isinstance(exc, httpx.TransportError):
                raise
            if _disk_full(exc):
                raise NotEnoughDiskSpace(
                    f"The disk filled up while downloading {name}; free some space and run "
                    "the download again to resume it."
                ) from exc
            raise DownloadError(f"Could not write {part}: {exc.strerror or exc}.") from exc

    _retrying(what, cancel, guarded, on_retry, position=lambda: done)
    meter.report(name, index, done, force=True)

    if resolved.sha256 and hasher.hexdigest() != resolved.sha256:
        discard(resolved.repo, resolved.filename)
        raise ChecksumMismatch(
            f"{name} was downloaded but its checksum does not match the one Hugging Face "
            "published; the damaged file was deleted. Try the download again."
        )
    return part


@contextlib.contextmanager
def _interrupt_on_cancel(response, cancel: threading.Event | None) -> Iterator[None]:
    """Pause promptly even when the server sends nothing: a stalled read would otherwise hold
    the pause until READ_TIMEOUT. A watchdog shuts the socket down (which, unlike close(), wakes
    a thread blocked in recv) as soon as ``cancel`` is set."""
    if cancel is None:
        yield
        return
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(0.1):
            if cancel.is_set():
                try:
                    stream = response.extensions["network_stream"]
                    stream.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
                except Exception:  # noqa: BLE001 - best effort; the read loop checks cancel too
                    log.debug("could not interrupt the download socket", exc_info=True)
                return

    watchdog = threading.Thread(target=watch, name="download-cancel", daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        finished.set()
        watchdog.join()


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"bytes (\d+)-", value or "")
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------------------------------------
# Public entry points


def download_variant(
    variant: ModelVariant,
    *,
    revision: str = "main",
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    dest_dir: Path | None = None,
) -> Path:
    """Download every file of ``variant`` into the models folder; returns the file to load.

    Raises DownloadCancelled (partials kept), NotEnoughDiskSpace (before the first byte),
    ChecksumMismatch (partial deleted), NetworkError, RepoNotFound or GatedRepoError.
    """
    dest_dir = dest_dir or paths.models_dir()
    targets = [dest_dir / f.filename.rsplit("/", 1)[-1] for f in variant.files]
    resolved = [
        resolve(variant.repo, f.filename, revision=revision, cancel=cancel) for f in variant.files
    ]
    if all(
        t.exists() and t.stat().st_size == r.size for t, r in zip(targets, resolved, strict=True)
    ):
        log.info("%s is already installed", targets[0])
        return targets[0]

    on_disk = [_prepare_partial(r) for r in resolved]
    needed = sum(r.size - d for r, d in zip(resolved, on_disk, strict=True))
    free = disk_free(paths.partial_dir())
    if needed + DISK_MARGIN > free:
        raise NotEnoughDiskSpace(
            f"Not enough disk space for {variant.filename.rsplit('/', 1)[-1]}: it needs "
            f"{human_size(needed + DISK_MARGIN)} free (including {human_size(DISK_MARGIN)} to "
            "spare) but "
            f"{paths.partial_dir().anchor or paths.partial_dir()} has {human_size(free)}."
        )

    meter = _Meter(progress, sum(r.size for r in resolved), len(resolved))
    parts = []
    for index, r in enumerate(resolved, start=1):
        parts.append(_transfer(r, cancel, meter, index))
        meter.base += r.size

    # Move the first part (the one llama.cpp is given) last, so it never appears without the rest.
    from assistant.models.library import MODEL_FILE_MODE

    for r, part, target in reversed(list(zip(resolved, parts, targets, strict=True))):
        with contextlib.suppress(OSError):  # models are not private, unlike their partials
            os.chmod(part, MODEL_FILE_MODE)
        os.replace(part, target)
        _sidecar(part).unlink(missing_ok=True)
        log.info("Installed %s (%s bytes, sha256 %s)", target, r.size, r.sha256)
    return targets[0]


def download_file(repo: str, filename: str, **kwargs) -> Path:
    """Download one file (a whole GGUF); see download_variant."""
    quant = hub.quantization_from_filename(filename) or filename
    variant = ModelVariant(repo, quant, (RemoteFile(filename, None, None),))
    return download_variant(variant, **kwargs)


def read_range(repo: str, filename: str, start: int, end: int, *, revision: str = "main") -> bytes:
    """Bytes ``start..end`` (inclusive) of a file on the Hub: GGUF headers for fit estimates."""
    hub.check_online()
    url = hub.file_url(repo, filename, revision)

    def get() -> bytes:
        headers = _headers()
        headers["Range"] = f"bytes={start}-{end}"
        with hub.translate_errors(repo, filename):
            r = _session().get(url, headers=headers, timeout=_timeout(), follow_redirects=True)
            if r.status_code == 416:
                return b""
            _raise_for_status(r, repo, filename)
            data = r.content
        return data[start : end + 1] if r.status_code == 200 else data

    return _retrying(f"{repo}/{filename}", None, get)  # type: ignore[return-value]


# First bytes fetched for a remote header; grown when gguf_info says the header is longer (a
# 150k-token vocabulary is 2-4 MB).
HEADER_PROBE = 4 * 2**20


def remote_header(
    repo: str, filename: str, *, revision: str = "main", size: int | None = None
) -> GGUFInfo:
    """Read a GGUF header on the Hub with HTTP Range requests (a few MB, not the whole file)."""
    want = HEADER_PROBE
    data = b""
    limit = 128 * 2**20  # no real header is this big; stop rather than download a model
    name = filename.rsplit("/", 1)[-1]
    while True:
        asked = want - len(data)
        chunk = read_range(repo, filename, len(data), want - 1, revision=revision)
        data += chunk
        try:
            return parse_gguf_header(data, file_size=size, name=name)
        except IncompleteHeader as exc:
            if len(chunk) < asked or (size is not None and len(data) >= size):
                raise InvalidModelFile(f"{name} on Hugging Face ends inside its header.") from None
            next_want = max(exc.needed, want * 2)
            if next_want > limit:
                raise InvalidModelFile(f"{filename} has an implausibly large header.") from None
            want = next_want
