"""``assistant serve``: the engine process. One Runner (the inference thread), the HTTP face on
uvicorn in the main thread, and, when a supervisor started it, a line protocol on stdout.

Supervised (``--supervised``), the process reports JSON lines on stdout (``listening``, each
``stage`` before it starts, ``worked`` after the first good reply of a model) and exits as soon
as its stdin closes, which is how it never outlives the app that started it, whatever way that
app ends. Its key then comes in the environment (``ASSISTANT_ENGINE_KEY``), never on the
command line, where other users could read it. That is the owner's key (the app's; its requests
go ahead of queued API requests); the Local API key, for other apps, comes as
``ASSISTANT_API_KEY`` when the user turned the Local API on.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import secrets
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from assistant import files, paths
from assistant.errors import AssistantError

log = logging.getLogger(__name__)

DEFAULT_PORT = 8484  # clear of Ollama 11434, LM Studio 1234, Jan 1337, llama-server 8080


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    api_key: str,
    owner_key: str = "",
    model: Path | None = None,
    n_ctx: int = 4096,
    n_gpu_layers: int = -1,
    threads: int = 0,
    slots: int = 0,
    max_queue: int = 0,
    allowed_origins: frozenset[str] = frozenset(),
    supervised: bool = False,
    announce: bool = True,
) -> int:
    """Serve until SIGINT/SIGTERM (or, supervised, until stdin closes).

    ``api_key`` is what other apps send; ``owner_key`` (random when not given) is what the app
    and the CLI send, found in ``engine.json``. ``slots`` 0 sizes the batch from memory.
    """
    import uvicorn

    from assistant.engine import cpu_probe
    from assistant.engine.gate import LOOPBACK_NAMES
    from assistant.engine.runner import DEFAULT_MAX_QUEUE, LoadJob, Runner
    from assistant.engine.server import EngineServer

    out_lock = threading.Lock()

    def report(event: dict[str, Any]) -> None:
        if not supervised:
            return
        line = json.dumps(event) + "\n"
        with out_lock, contextlib.suppress(OSError, ValueError):
            sys.stdout.write(line)
            sys.stdout.flush()

    owner_key = owner_key or secrets.token_urlsafe(24)
    if not (api_key or supervised):
        raise AssistantError("The engine needs an API key (--api-key, or the one in Settings).")
    try:
        sock = _bind(host, port)
    except OSError as exc:
        message = (
            f"Could not listen on {host}:{port}: {exc.strerror or exc}. "
            "Is another server using that port? Pick another port."
        )
        report({"event": "fatal", "message": message})  # the supervisor: don't restart
        raise AssistantError(message) from exc
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound_port}"

    build_key = cpu_probe.cache_key()
    runner = Runner(
        build_key=build_key,
        n_ctx=n_ctx,
        n_gpu_layers=n_gpu_layers,
        threads=threads,
        slots=slots,
        max_queue=max_queue or DEFAULT_MAX_QUEUE,
        report=report,
    )
    runner.start()
    loopback = is_loopback(host)
    if loopback:
        hosts: frozenset[str] | None = LOOPBACK_NAMES | {host}
    else:
        hosts = None  # reachable by other names on the network; the key still guards it
        log.warning("The engine listens on %s, reachable from other machines", host)
    app = EngineServer(runner).app(
        api_key=api_key, owner_key=owner_key, allowed_hosts=hosts, allowed_origins=allowed_origins
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
        log_config=None,
    )
    server = uvicorn.Server(config)

    if model is not None:
        runner.submit(LoadJob(model, n_ctx, n_gpu_layers))
    if supervised:
        _exit_when_stdin_closes()
    own_file = _announce_file(url, owner_key) if announce else None
    report({"event": "listening", "url": url, "pid": os.getpid(), "build_key": build_key})
    if not supervised:
        print(f"Assistant engine serving the OpenAI API at {url}/v1", flush=True)
        if not loopback:
            print(
                f"warning: {host} is reachable from other machines on your network; "
                "anyone with the key can use this engine.",
                file=sys.stderr,
            )
        print("Press Ctrl+C to stop.", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        if own_file is not None:
            _withdraw_file(own_file)
        runner.close(timeout=5)
    return 0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if sys.platform != "win32":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _exit_when_stdin_closes() -> None:
    """The supervisor holds our stdin open; EOF means it closed it or died."""

    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        _withdraw_file(paths.engine_file())
        logging.shutdown()
        os._exit(0)

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def _announce_file(url: str, api_key: str) -> Path | None:
    """Tell clients of this data directory (``assistant chat``) where to find us."""
    path = paths.engine_file()
    try:
        files.write_private_json(path, {"url": url, "api_key": api_key, "pid": os.getpid()})
    except OSError as exc:
        log.warning("Could not write %s: %s", path, exc)
        return None
    return path


def _withdraw_file(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
