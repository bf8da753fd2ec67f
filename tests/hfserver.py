"""A local stand-in for the Hugging Face Hub, speaking the part of its API huggingface_hub uses.

Real huggingface_hub code talks to it (``HF_ENDPOINT`` points here per test):
- ``GET /api/models`` (search), ``GET /api/models/{repo}[/revision/{rev}]`` (model info with
  siblings, sizes and LFS sha256 when ``blobs=true``), ``GET /api/models/{repo}/tree/{rev}``;
- ``HEAD|GET /{repo}/resolve/{rev}/{file}``: a 302 to a "CDN" on another origin (localhost vs
  127.0.0.1, as huggingface.co redirects to its CDN) with X-Repo-Commit, X-Linked-Size,
  X-Linked-Etag; the CDN answers Range requests with 206 + Content-Range.

Faults are injected per file on the CDN (the body transfer): an HTTP status N times, a dropped
connection after N bytes, a slow trickle, bytes that do not match the advertised sha256.
Every request is logged, and body bytes sent are counted per file.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest


@dataclass
class FakeFile:
    data: bytes
    sha256: str = ""
    # What the server claims; differs from sha256 for a "corrupted" file.
    advertised_sha256: str = ""
    git_oid: str = ""  # computed once: hashing per request would slow the benchmark's server

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.advertised_sha256 = self.advertised_sha256 or self.sha256
        self.git_oid = hashlib.sha1(self.data).hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, FakeFile]
    commit: str
    gated: int | None = None  # None, 401 or 403: what /resolve answers without access
    downloads: int = 0
    likes: int = 0
    license: str = "apache-2.0"
    last_modified: str = "2025-01-01T00:00:00.000Z"
    pipeline_tag: str = "text-generation"
    gguf: dict = field(default_factory=dict)


@dataclass
class Fault:
    kind: str  # "status" | "drop" | "trickle" | "hold"
    times: int = 1  # how many requests it applies to (-1: all)
    status: int = 500
    after: int = 0  # drop, hold: body bytes to send before closing the connection, or waiting
    chunk: int = 4096  # trickle
    delay: float = 0.01


@dataclass
class Hit:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int = 0
    filename: str | None = None
    authorization: bool = False


class HFServer:
    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.log: list[Hit] = []
        self.lock = threading.Lock()
        self.required_token: str | None = None  # gated repos open with this bearer token
        self.released = threading.Event()  # held transfers go on once it is set
        handler = type("Handler", (_Handler,), {"hf": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # Another origin, like huggingface.co -> cdn-lfs.hf.co: huggingface_hub stops at the 302.
        self.cdn = f"http://localhost:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- setup ---------------------------------------------------------------------------

    def add_repo(self, repo_id: str, files: dict[str, bytes], **kw: object) -> FakeRepo:
        commit = hashlib.sha1(repo_id.encode()).hexdigest()
        repo = FakeRepo(repo_id, {k: FakeFile(v) for k, v in files.items()}, commit, **kw)  # type: ignore[arg-type]
        self.repos[repo_id] = repo
        return repo

    def fail(self, filename: str, status: int = 500, times: int = 1) -> None:
        self.faults.setdefault(filename, []).append(Fault("status", times, status=status))

    def drop_after(self, filename: str, nbytes: int, times: int = 1) -> None:
        self.faults.setdefault(filename, []).append(Fault("drop", times, after=nbytes))

    def trickle(
        self, filename: str, chunk: int = 4096, delay: float = 0.01, times: int = -1
    ) -> None:
        self.faults.setdefault(filename, []).append(
            Fault("trickle", times, chunk=chunk, delay=delay)
        )

    def hold_after(
        self,
        filename: str,
        nbytes: int,
        times: int = 1,
        chunk: int = 1 << 20,
        delay: float = 0.0,
    ) -> None:
        """Send ``nbytes`` of the body (``chunk`` bytes every ``delay`` s), then hold the
        connection open, silent, until ``release()`` (at most 60 s), and close it: a download is
        surely midway while a test pauses or interrupts it, however slow the machine (a trickle
        alone can finish first when the client is starved of CPU)."""
        self.faults.setdefault(filename, []).append(
            Fault("hold", times, after=nbytes, chunk=chunk, delay=delay)
        )

    def release(self) -> None:
        """Let every held transfer go on."""
        self.released.set()

    def clear_faults(self) -> None:
        self.faults.clear()

    def corrupt(self, repo_id: str, filename: str) -> None:
        """Serve bytes that do not match the sha256 the repo advertises."""
        f = self.repos[repo_id].files[filename]
        advertised = f.advertised_sha256
        bad = bytearray(f.data)
        bad[len(bad) // 2] ^= 0xFF
        self.repos[repo_id].files[filename] = FakeFile(bytes(bad), advertised_sha256=advertised)

    # --- inspection ----------------------------------------------------------------------

    def body_bytes(self, filename: str) -> int:
        return sum(h.body_bytes for h in self.log if h.filename == filename and h.method == "GET")

    def body_gets(self, filename: str) -> list[Hit]:
        return [
            h
            for h in self.log
            if h.filename == filename and h.method == "GET" and h.path.startswith("/cdn/")
        ]

    def _take_fault(self, filename: str) -> Fault | None:
        with self.lock:
            for fault in self.faults.get(filename, []):
                if fault.times != 0:
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    hf: HFServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # --- helpers -------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        filename: str | None = None,
    ) -> None:
        # Logged before sending: the client may act on the answer before this thread runs again.
        self._log(status, len(body) if self.command != "HEAD" else 0, filename)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        self._send(
            status,
            json.dumps(obj).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    def _error(
        self, status: int, code: str | None, message: str, filename: str | None = None
    ) -> None:
        headers = {"X-Error-Message": message, "Content-Type": "application/json"}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers, filename=filename)

    def _log(self, status: int, body_bytes: int, filename: str | None) -> Hit:
        hit = Hit(
            self.command,
            self.path,
            self.headers.get("Range"),
            status,
            body_bytes,
            filename,
            "Authorization" in self.headers,
        )
        with self.hf.lock:
            self.hf.log.append(hit)
        return hit

    def _authorized(self) -> bool:
        token = self.hf.required_token
        return token is not None and self.headers.get("Authorization") == f"Bearer {token}"

    # --- routing -------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        try:
            if path == "/api/models":
                return self._search(query)
            if path.startswith("/api/models/"):
                return self._api_model(path.removeprefix("/api/models/"), query)
            if path.startswith("/cdn/"):
                return self._cdn(path.removeprefix("/cdn/"))
            m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if m:
                return self._resolve(*m.groups())
            self._error(404, None, "Not found")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _search(self, query: dict[str, list[str]]) -> None:
        text = (query.get("search") or [""])[0].lower()
        filters = query.get("filter", [])
        repos = [r for r in self.hf.repos.values() if text in r.repo_id.lower()]
        if "gguf" in filters:
            repos = [r for r in repos if any(f.endswith(".gguf") for f in r.files)]
        if "pipeline_tag" in query:
            repos = [r for r in repos if r.pipeline_tag == query["pipeline_tag"][0]]
        sort = (query.get("sort") or ["downloads"])[0]
        key = {
            "downloads": lambda r: r.downloads,
            "likes": lambda r: r.likes,
            "lastModified": lambda r: r.last_modified,
        }.get(sort, lambda r: r.downloads)
        repos.sort(key=key, reverse=True)
        limit = int((query.get("limit") or ["1000"])[0])
        self._json(200, [self._model_json(r, full=False) for r in repos[:limit]])

    def _model_json(self, repo: FakeRepo, *, full: bool, blobs: bool = False) -> dict:
        out: dict = {
            "_id": repo.commit[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "downloads": repo.downloads,
            "likes": repo.likes,
            "lastModified": repo.last_modified,
            "private": False,
            "gated": "manual" if repo.gated else False,
            "pipeline_tag": repo.pipeline_tag,
            "library_name": "gguf",
            "tags": ["gguf", repo.pipeline_tag, f"license:{repo.license}"],
        }
        if full:
            out["sha"] = repo.commit
            out["cardData"] = {"license": repo.license}
            if repo.gguf:
                out["gguf"] = repo.gguf
            siblings = []
            for name, f in repo.files.items():
                s: dict = {"rfilename": name}
                if blobs:
                    s["size"] = len(f.data)
                    s["blobId"] = f.git_oid
                    s["lfs"] = {
                        "sha256": f.advertised_sha256,
                        "size": len(f.data),
                        "pointerSize": 135,
                    }
                siblings.append(s)
            out["siblings"] = siblings
        return out

    def _api_model(self, rest: str, query: dict[str, list[str]]) -> None:
        parts = rest.split("/")
        repo_id = "/".join(parts[:2])
        repo = self.hf.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        tail = parts[2:]
        if not tail or tail[0] == "revision":
            return self._json(
                200,
                self._model_json(
                    repo,
                    full=True,
                    blobs=query.get("blobs") == ["True"] or query.get("blobs") == ["true"],
                ),
            )
        if tail[0] == "tree":
            prefix = "/".join(tail[2:])
            entries = []
            for name, f in sorted(repo.files.items()):
                if prefix and not name.startswith(prefix + "/"):
                    continue
                entries.append(
                    {
                        "type": "file",
                        "path": name,
                        "size": len(f.data),
                        "oid": f.git_oid,
                        "lfs": {
                            "oid": f.advertised_sha256,
                            "size": len(f.data),
                            "pointerSize": 135,
                        },
                    }
                )
            return self._json(200, entries)
        self._error(404, None, "Not found")

    def _resolve(self, repo_id: str, revision: str, filename: str) -> None:
        repo = self.hf.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        if repo.gated and not self._authorized():
            return self._error(
                repo.gated,
                "GatedRepo",
                f"Access to model {repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
            )
        f = repo.files.get(filename)
        if f is None:
            return self._error(404, "EntryNotFound", "Entry not found")
        location = f"{self.hf.cdn}/cdn/{quote(repo_id)}/{quote(filename)}?sig=x"
        self._send(
            302,
            b"",
            {
                "Location": location,
                "X-Repo-Commit": repo.commit,
                "X-Linked-Size": str(len(f.data)),
                "X-Linked-Etag": f'"{f.advertised_sha256}"',
                "ETag": f'"{f.git_oid}"',
            },
            filename=filename,
        )

    def _cdn(self, rest: str) -> None:
        owner, name, filename = rest.split("/", 2)
        repo = self.hf.repos.get(f"{owner}/{name}")
        f = repo.files.get(filename) if repo else None
        if f is None:
            return self._error(404, None, "Not found")
        fault = self.hf._take_fault(filename) if self.command == "GET" else None
        if fault is not None and fault.kind == "status":
            return self._error(fault.status, None, f"Injected HTTP {fault.status}", filename)
        size = len(f.data)
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng:
            m = re.match(r"bytes=(\d+)-(\d*)$", rng)
            if m:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                if start >= size:
                    return self._send(
                        416, b"", {"Content-Range": f"bytes */{size}"}, filename=filename
                    )
                status = 206
        body = f.data[start : end + 1]
        hit = self._log(status, 0, filename)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{f.advertised_sha256}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return

        def send(piece: bytes) -> None:
            # Counted before the write, so the count is never behind what the client has seen.
            hit.body_bytes += len(piece)
            self.wfile.write(piece)

        try:
            if fault is not None and fault.kind == "drop":
                send(body[: fault.after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif fault is not None and fault.kind == "hold":
                for i in range(0, fault.after, fault.chunk):
                    send(body[i : min(i + fault.chunk, fault.after)])
                    self.wfile.flush()
                    time.sleep(fault.delay)
                self.hf.released.wait(60)
                self.close_connection = True
            elif fault is not None and fault.kind == "trickle":
                for i in range(0, len(body), fault.chunk):
                    send(body[i : i + fault.chunk])
                    self.wfile.flush()
                    time.sleep(fault.delay)
            else:
                for i in range(0, len(body), 1 << 20):
                    send(body[i : i + (1 << 20)])
        except OSError:  # the client went away (cancel, or a test's drop)
            self.close_connection = True


@pytest.fixture
def hf_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HFServer]:
    """A fresh fake Hub for one test, with HF_ENDPOINT pointing at it."""
    server = HFServer()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        yield server
    finally:
        server.close()
