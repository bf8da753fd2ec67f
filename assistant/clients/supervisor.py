"""Starts, watches and restarts an engine process (``assistant serve --supervised``).

Let it crash: llama.cpp can die natively (SIGSEGV in a CPU kernel, an abort in a GPU driver)
and nothing in-process survives that. The supervisor reads the child's stage reports, and when
the child dies it records how (signal or exit code) and where (loading, reading the prompt,
generating, idle), restarts it, and when it dies twice in a row at the same stage with the same
model, steps that model's configuration down one rung (configs.step_down): no GPU layers (when
any were on a GPU), then no extra buffer types (the AMX fix), then a smaller context. The
stepped-down configuration is remembered, so the next start does not crash first.

The child never outlives us: it exits when its stdin, which we hold, closes, and that happens
however this process ends (quit, crash, SIGKILL).

About 400 lines: starting, watching, describing a death and restarting are one loop over one
child process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from assistant import paths
from assistant.clients.engine_client import EngineClient
from assistant.engine import configs
from assistant.errors import EngineUnavailable, describe_exit
from assistant.paths import assistant_command
from assistant.records import API_KEY_ENV, KEY_ENV

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
# More deaths than this within the window and the supervisor stops restarting.
MAX_RESTARTS, RESTART_WINDOW_S = 6, 60.0

STAGE_WORDS = {
    "load": "while loading the model",
    "prompt": "while reading the prompt",
    "generate": "while writing the reply",
    "idle": "while idle",
    "embed": "while embedding text (documents)",
    "start": "while starting",
}


@dataclass(frozen=True)
class Crash:
    stage: str  # load | prompt | generate | idle | start
    model: str  # the model path it was working on ("" when none)
    how: str  # "SIGSEGV", "exit code 3", ...
    effective: dict[str, Any] = field(default_factory=dict)
    fallback: str = ""  # what was stepped down because of it ("" when nothing)
    exhausted: bool = False  # every rung of the fallback ladder is used
    restarted: bool = True

    def sentence(self) -> str:
        where = STAGE_WORDS.get(self.stage, f"during {self.stage}")
        then = "it was restarted" if self.restarted else "it crashed too often to restart"
        text = f"The engine stopped ({self.how}) {where}; {then}."
        if self.fallback:
            text += f" It crashed there twice, so {self.fallback}."
        return text


class Supervisor:
    """One engine child process at a time; ``client()`` reaches the current one."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        threads: int = 0,
        n_ctx: int = 4096,
        slots: int | None = 1,
        max_queue: int = 0,
        on_crash: Callable[[Crash], None] | None = None,
        env: dict[str, str] | None = None,
        announce: bool = True,
    ):
        self.host = host
        self.port = port
        # The key this supervisor's clients use (the owner's: their requests go first), and the
        # Local API key for other apps, if the user turned that on.
        self.api_key = secrets.token_urlsafe(24)
        self.local_api_key = api_key or ""
        self.threads = threads
        self.n_ctx = n_ctx
        # Requests served at once: 0 sizes it from memory, None takes the Settings' value.
        self.slots = slots
        self.max_queue = max_queue  # requests waiting for a slot before 429; 0: the default
        self.on_crash = on_crash
        self._env = env
        self.announce = announce  # write engine.json, so `assistant chat` can use this engine
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: EngineClient | None = None
        self._ready = threading.Event()
        self._exited = threading.Event()
        self._stopping = False
        self._stage: dict[str, Any] = {"stage": "start", "model": ""}
        self.build_key = ""
        self.url = ""
        self.crashes: list[Crash] = []
        self._deaths: list[float] = []
        self.crash_count = 0  # every death so far (crashes holds only the current streak)
        self.last_crash: Crash | None = None
        self._reported = 0  # deaths handed to wait_exit() callers
        self.gave_up = False
        self.fatal = ""  # why the engine could not start at all (a port in use): no restarts

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> EngineClient:
        """Start the engine process (if not running) and wait until it listens."""
        with self._lock:
            self._refuse_if_done()
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()
        return self.wait_ready(timeout)

    def _refuse_if_done(self) -> None:
        if self._stopping:
            raise EngineUnavailable("The engine is shutting down.")
        if self.fatal:
            raise EngineUnavailable(self.fatal)
        if self.gave_up:
            raise EngineUnavailable(
                f"The engine crashed {len(self._deaths)} times in a minute and was not "
                f"restarted again; see {paths.log_dir() / 'engine-stderr.log'}."
            )

    def _spawn(self) -> None:
        self._ready.clear()
        self._exited.clear()
        self._stage = {"stage": "start", "model": ""}
        cmd = assistant_command(
            "serve",
            "--supervised",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--ctx",
            str(self.n_ctx),
        )
        if self.slots is not None:
            cmd += ["--slots", str(self.slots)]
        if self.max_queue:
            cmd += ["--queue", str(self.max_queue)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        if not self.announce:
            cmd.append("--no-announce")
        env = dict(self._env if self._env is not None else os.environ)
        env[KEY_ENV] = self.api_key
        env.pop(API_KEY_ENV, None)
        if self.local_api_key:
            env[API_KEY_ENV] = self.local_api_key
        env.setdefault("PYTHONUNBUFFERED", "1")
        stderr_log = _stderr_log()
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True  # the terminal's Ctrl+C goes to us, not it
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_log,
            env=env,
            **kwargs,
        )
        if stderr_log is not subprocess.DEVNULL:
            stderr_log.close()
        log.info("Started engine process %d", self._proc.pid)
        threading.Thread(
            target=self._watch, args=(self._proc,), name="engine-watch", daemon=True
        ).start()

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> EngineClient:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self._exited.is_set() or self._stopping:
                self._refuse_if_done()
            if time.monotonic() > deadline:
                raise EngineUnavailable("The engine did not start in time.")
        assert self._client is not None
        return self._client

    def client(self) -> EngineClient:
        if self._client is None or not self._ready.is_set():
            return self.start()
        return self._client

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def stage(self) -> str:
        return str(self._stage.get("stage", ""))

    def wait_exit(self, timeout: float) -> Crash | None:
        """After a broken request: the crash not yet reported to a caller, if the process
        died (None if it still runs); waits up to ``timeout`` for the death to be seen."""
        deadline = time.monotonic() + timeout
        while not self._stopping:
            if self.crash_count > self._reported:
                self._reported = self.crash_count
                return self.last_crash
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)
        return None

    def stop(self, timeout: float = 5.0) -> None:
        """End the engine: close its stdin (it exits at once), then kill it if it lingers."""
        with self._lock:
            self._stopping = True
            proc = self._proc
            if proc is None:
                return
            with contextlib.suppress(OSError, ValueError):
                if proc.stdin is not None:
                    proc.stdin.close()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
            if self._client is not None:
                self._client.close()
                self._client = None
            self._ready.clear()

    def kill(self, sig: int = signal.SIGKILL if hasattr(signal, "SIGKILL") else 9) -> None:
        """Kill the engine process (tests and the crash drill); it will be restarted."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, sig)

    # -- watching ------------------------------------------------------------------------------

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._read_events(proc.stdout)
        code = proc.wait()
        self._ready.clear()
        self._exited.set()
        if self._stopping or self.fatal:
            return  # asked to stop, or it could not start at all: restarting would not help
        self._on_death(proc, code)

    def _read_events(self, stream: IO[bytes]) -> None:
        for raw in stream:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue  # a stray line from a library: not ours
            kind = event.get("event")
            if kind == "listening":
                self.url = event["url"]
                self.build_key = event.get("build_key", "")
                old, self._client = self._client, EngineClient(self.url, self.api_key)
                if old is not None:
                    old.close()
                self._ready.set()
            elif kind == "stage":
                self._stage = event
            elif kind == "fatal":
                self.fatal = str(event.get("message", "The engine could not start."))
            elif kind == "worked":
                # A good reply: the crash streak at this model is over.
                self.crashes = [c for c in self.crashes if c.model != event.get("model")]
                if self.build_key:
                    configs.forget_crash(self.build_key)

    def _on_death(self, proc: subprocess.Popen[bytes], code: int) -> None:
        stage = dict(self._stage)
        crash = Crash(
            stage=str(stage.get("stage", "start")),
            model=str(stage.get("model", "")),
            how=describe_exit(code),
            effective={k: stage[k] for k in ("extra_bufts", "gpu_layers", "n_ctx") if k in stage},
        )
        # The streak survives this process too: each `assistant chat` has a supervisor of its
        # own, and two CLI runs crashing alike must step down as two messages in the app do.
        previous = (
            (self.crashes[-1].stage, self.crashes[-1].model)
            if self.crashes
            else configs.last_crash(self.build_key)
            if self.build_key
            else None
        )
        if crash.stage in ("load", "prompt", "generate") and crash.model and self.build_key:
            if previous == (crash.stage, crash.model):
                crash = self._step_down(crash)
                configs.forget_crash(self.build_key)
            else:
                configs.record_crash(self.build_key, crash.stage, crash.model)
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW_S] + [now]
        if len(self._deaths) > MAX_RESTARTS:
            self.gave_up = True
            crash = dataclasses.replace(crash, restarted=False)
        log.warning("Engine process %d died: %s", proc.pid, crash.sentence())
        self.crashes.append(crash)
        self.last_crash = crash
        self.crash_count += 1
        if self.gave_up:
            log.error("The engine died %d times in a minute; not restarting", len(self._deaths))
        else:
            with self._lock:
                if not self._stopping:
                    self._spawn()
        if self.on_crash is not None:
            try:
                self.on_crash(crash)
            except Exception:  # noqa: BLE001 - a listener must not stop the restarts
                log.exception("on_crash failed")

    def _step_down(self, crash: Crash) -> Crash:
        model = Path(crash.model)
        current = configs.remembered(self.build_key, model)
        effective = dict(crash.effective)
        if "n_ctx" not in effective:
            effective["n_ctx"] = self.n_ctx
        safer = configs.step_down(current, effective)
        if safer is None:
            return dataclasses.replace(
                crash, fallback="no safer configuration is left", exhausted=True
            )
        configs.remember(self.build_key, model, safer)
        return dataclasses.replace(crash, fallback=f"it now runs {safer.notes[-1]}")


def _stderr_log() -> Any:
    """The engine's stderr (llama.cpp's last words, faulthandler's traceback) goes to a log."""
    try:
        path = paths.log_dir() / "engine-stderr.log"
        if path.exists() and path.stat().st_size > 1_000_000:
            path.replace(path.with_suffix(".log.1"))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "ab")
    except OSError:
        return subprocess.DEVNULL


def find_running() -> EngineClient | None:
    """An engine already serving this data directory (the app's, or ``assistant serve``)."""
    try:
        info = json.loads(paths.engine_file().read_text(encoding="utf-8"))
        url, key, pid = str(info["url"]), str(info["api_key"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _pid_alive(pid):
        return None
    client = EngineClient(url, key)
    try:
        client.health(timeout=2.0)
    except EngineUnavailable:
        client.close()
        return None
    return client


def _pid_alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # the health check decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
