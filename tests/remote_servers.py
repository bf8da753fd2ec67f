"""Real OpenAI-compatible servers for the remote-engine tests, and a proxy that breaks them.

- ``LlamaCppPythonServer``: llama-cpp-python's own server (``python -m llama_cpp.server``), a
  server we did not write, serving a model on loopback in its own process.
- ``FaultProxy``: a small HTTP proxy in front of any server. It records every request and can
  refuse, delay, answer 401/404/429/500, cut a stream midway, send an error chunk, drop the
  usage chunk, or add ``reasoning_content`` deltas, each for the next request or all of them.

Run as a script, this module starts llama-cpp-python's server unchanged, except that on a CPU
where llama.cpp's AMX path crashes (see assistant/engine/cpu_probe.py) models load without the
extra buffer types, an option that server does not expose.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2 as httpx

NO_EXTRA_BUFTS_ENV = "ASSISTANT_TEST_NO_EXTRA_BUFTS"


# Each fault the proxy makes, the sentence the user is shown (its start), and whether a partial
# reply arrived before it: the CLI and the GUI tests both go through every one.
FAULTS = [
    ("refuse", "gpu-box at http://127.0.0.1:", False),
    ("status:401", "gpu-box refused the API key (HTTP 401: Invalid API key)", False),
    ("status:404", "gpu-box answered 404 Not Found (The model does not exist)", False),
    ("status:429", "gpu-box is busy (HTTP 429: Rate limit reached)", False),
    ("status:500", "gpu-box failed (HTTP 500: Internal server error).", False),
    ("cut:3", "The connection to gpu-box was cut in the middle of the reply", True),
    ("error_chunk:3", "gpu-box stopped the reply with an error: out of memory", True),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 120.0, process: subprocess.Popen[bytes] | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@dataclass
class LlamaCppPythonServer:
    """``python -m llama_cpp.server --model PATH`` on a free loopback port."""

    model: Path
    alias: str = "smollm2-135m"
    n_ctx: int = 2048
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, log: Path) -> LlamaCppPythonServer:
        from assistant.engine import cpu_probe

        env = dict(os.environ)
        if not cpu_probe.extra_bufts_work():
            env[NO_EXTRA_BUFTS_ENV] = "1"
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--model", str(self.model), "--host", "127.0.0.1",
             "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", "2",
             "--model_alias", self.alias],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        wait_http(f"{self.url}/models", process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


# -- the proxy ----------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FaultProxy:
    """Forwards to ``upstream`` (a base URL such as http://127.0.0.1:PORT) unless told to fail.

    Faults (``fail_next(...)`` for the next chat request, ``always(...)`` for every one):
        "refuse": close the connection without answering.
        "delay:S": wait S seconds, then forward.
        "status:N": answer HTTP N with an OpenAI-style error body (429 with Retry-After:
            retry_after, 1 unless set).
        "cut:N": forward N events of the stream, then drop the connection.
        "error_chunk:N": forward N events, then send a data: {"error": ...} chunk and [DONE].
        "no_usage": forward without stream_options and without the usage chunk.
        "reasoning": send two reasoning_content deltas before the reply.
        "think_tags": send the thinking in the content, as <think>...</think>, cut across
            deltas (a server without a reasoning parser).
        "slow:S": forward, pausing S seconds before each event.
    """

    def __init__(self, upstream: str, tls: tuple[Path, Path] | None = None):
        self.upstream = upstream.rstrip("/")
        self.scheme = "https" if tls else "http"
        self.retry_after = 1  # the seconds a 429 asks the client to wait
        self.requests: list[Seen] = []
        self._plan: list[str] = []
        self._always: str | None = None
        self._lock = threading.Lock()
        # Set on close: a request still being delayed is dropped, not sent on afterwards (it
        # would reach the server in the middle of another test).
        self._closed = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self, "GET")

            def do_POST(self) -> None:
                proxy._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/v1"

    def fail_next(self, *faults: str) -> None:
        with self._lock:
            self._plan.extend(faults)

    def always(self, fault: str | None) -> None:
        with self._lock:
            self._always = fault

    def chat_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def close(self) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()

    # -- one request ------------------------------------------------------------------------

    def _fault(self, path: str) -> str | None:
        with self._lock:
            if path.endswith("/chat/completions") and self._plan:
                return self._plan.pop(0)
            if self._always and (
                path.endswith("/chat/completions") or self._always in ("refuse", "status:401")
            ):
                return self._always
        return None

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.requests.append(Seen(method, h.path, dict(h.headers), body))
        fault = self._fault(h.path) or ""
        kind, _, arg = fault.partition(":")
        if kind == "refuse":
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "status":
            self._answer_error(h, int(arg))
            return
        if kind == "delay" and self._closed.wait(float(arg)):
            return
        if kind == "no_usage" and isinstance(body, dict):
            body.pop("stream_options", None)
            raw = json.dumps(body).encode()
        headers = {
            k: v for k, v in h.headers.items() if k.lower() not in ("host", "content-length")
        }
        with httpx.Client(timeout=None, trust_env=False) as client:
            with client.stream(
                method, self.upstream + h.path, content=raw, headers=headers
            ) as upstream:
                h.send_response(upstream.status_code)
                for k, v in upstream.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        h.send_header(k, v)
                h.send_header("Connection", "close")
                h.end_headers()
                if kind in ("reasoning", "think_tags"):
                    field = "reasoning_content" if kind == "reasoning" else "content"
                    pieces = ["Let me think. ", "The user greets me."]
                    if kind == "think_tags":
                        pieces = [
                            "<thi",
                            "nk>\nLet me think. ",
                            "The user greets me.</th",
                            "ink>\n\n",
                        ]
                    for piece in pieces:
                        delta = {"choices": [{"index": 0, "delta": {field: piece}}]}
                        h.wfile.write(f"data: {json.dumps(delta)}\n\n".encode())
                        h.wfile.flush()
                events = 0
                for line in upstream.iter_lines():
                    if not line:
                        continue
                    if line.startswith("data:") and line[5:].strip() != "[DONE]":
                        if kind == "no_usage":
                            event = json.loads(line[5:])
                            if event.get("usage") and not event.get("choices"):
                                continue
                            event.pop("usage", None)
                            line = "data: " + json.dumps(event)
                        if kind in ("cut", "error_chunk") and events >= int(arg):
                            if kind == "cut":
                                h.wfile.flush()
                                h.connection.shutdown(socket.SHUT_RDWR)
                                return
                            error = {"error": {"message": "out of memory", "code": 500}}
                            h.wfile.write(f"data: {json.dumps(error)}\n\ndata: [DONE]\n\n".encode())
                            h.wfile.flush()
                            return
                        events += 1
                        if kind == "slow" and self._closed.wait(float(arg)):
                            return
                    try:
                        h.wfile.write((line + "\n\n").encode())
                        h.wfile.flush()
                    except OSError:
                        return  # the client went away (Stop): so does the upstream request

    def _answer_error(self, h: BaseHTTPRequestHandler, status: int) -> None:
        messages = {
            401: ("Invalid API key", "invalid_api_key"),
            404: ("The model does not exist", "model_not_found"),
            429: ("Rate limit reached", "rate_limit_exceeded"),
            500: ("Internal server error", "server_error"),
        }
        message, code = messages.get(status, ("Error", "error"))
        payload = json.dumps({"error": {"message": message, "type": code, "code": code}}).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        if status == 429:
            h.send_header("Retry-After", str(self.retry_after))
        if status in (301, 302, 307, 308):
            h.send_header("Location", "https://gpu-box.example/api/v1/chat/completions")
        h.end_headers()
        h.wfile.write(payload)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself (openssl), and its key."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def fault_proxy(upstream: str, tls: tuple[Path, Path] | None = None) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, tls)
    try:
        yield proxy
    finally:
        proxy.close()


def _serve_llama_cpp_python() -> None:
    """llama-cpp-python's server, as `python -m llama_cpp.server` runs it."""
    import runpy

    if os.environ.get(NO_EXTRA_BUFTS_ENV):
        import llama_cpp.llama_cpp as lib

        default_params = lib.llama_model_default_params

        def without_extra_bufts() -> Any:
            params = default_params()
            params.use_extra_bufts = False
            return params

        lib.llama_model_default_params = without_extra_bufts
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _serve_llama_cpp_python()
