"""The engine process dies natively (real SIGSEGV, injected) and the supervisor copes: it
restarts it, steps down after a repeated crash, remembers what worked, and never leaves an
orphan behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.clients.supervisor import Supervisor
from assistant.engine import configs
from assistant.engine.crash_injection import ENV as CRASH_ENV
from assistant.errors import EngineUnavailable
from assistant.records import GenerationParams
from tests.conftest import install_model
from tests.tinymodel import CHATML_TEMPLATE, write_tiny_model

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

HELLO = [{"role": "user", "content": "Hello"}]
PARAMS = GenerationParams(max_tokens=8, seed=1)


@pytest.fixture
def tiny(tmp_path: Path, assistant_home: Path) -> Path:
    model = write_tiny_model(tmp_path / "tiny-crash.gguf", chat_template=CHATML_TEMPLATE)
    return install_model(model, assistant_home)


def supervisor(**env: str) -> Supervisor:
    return Supervisor(env={**os.environ, **env}, announce=False, n_ctx=1024)


def trusting_probe_cache(folder: Path) -> dict[str, str]:
    """A CPU-probe cache that says extra buffer types work here, so the first rung of the
    ladder applies on every machine (on an AMX VM the real probe turns them off already).
    The injected crash comes before any real decode, so the AMX path is never reached."""
    from assistant.engine import cpu_probe

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu-probe.json").write_text(
        json.dumps({cpu_probe.cache_key(): {"extra_bufts": True, "detail": "test"}})
    )
    return {"ASSISTANT_CACHE": str(folder)}


def test_a_crash_at_the_first_decode_steps_down_on_the_second_and_is_remembered(
    tiny: Path, tmp_path: Path
) -> None:
    cache = trusting_probe_cache(tmp_path / "cache")
    sup = supervisor(**{CRASH_ENV: "decode"}, **cache)
    try:
        client = sup.start()
        client.load(tiny.name, n_ctx=1024, n_gpu_layers=0)
        # First crash: restarted with the same configuration.
        with pytest.raises(EngineUnavailable):
            client.chat(HELLO, PARAMS)
        first = sup.wait_exit(10)
        assert first is not None
        assert (first.stage, first.how, first.fallback) == ("prompt", "SIGSEGV", "")
        assert "stopped (SIGSEGV) while reading the prompt" in first.sentence()
        # Second crash at the same stage with the same model: one rung down.
        client = sup.wait_ready()
        client.load(tiny.name, n_ctx=1024, n_gpu_layers=0)
        with pytest.raises(EngineUnavailable):
            client.chat(HELLO, PARAMS)
        second = sup.wait_exit(10)
        assert second is not None and "extra buffer types" in second.fallback
        # Now the model loads in the safer configuration, and replies.
        client = sup.wait_ready()
        loaded = client.load(tiny.name, n_ctx=1024, n_gpu_layers=0)
        assert "extra buffer types" in loaded.safe_mode_note
        completion = client.chat(HELLO, PARAMS)
        assert completion.finish_reason in ("stop", "length") and completion.text
        remembered = configs.remembered(sup.build_key, tiny)
        assert remembered.extra_bufts is False and remembered.step == 1
    finally:
        sup.stop()

    # A new engine (the next start of the app) uses the remembered configuration at once.
    again = supervisor(**{CRASH_ENV: "decode"}, **cache)
    try:
        client = again.start()
        client.load(tiny.name, n_ctx=1024, n_gpu_layers=0)
        assert client.chat(HELLO, PARAMS).text
        assert again.crashes == []
    finally:
        again.stop()


def test_the_fallback_ladder_ends(tiny: Path) -> None:
    base = configs.EngineConfig()
    # Layers on a GPU go first: with a GPU in play, its driver is the likeliest to crash.
    one = configs.step_down(base, {"extra_bufts": True, "gpu_layers": 20, "n_ctx": 4096})
    assert one is not None and one.gpu_layers == 0 and one.extra_bufts
    two = configs.step_down(one, {"extra_bufts": True, "gpu_layers": 0, "n_ctx": 4096})
    assert two is not None and not two.extra_bufts
    three = configs.step_down(two, {"extra_bufts": False, "gpu_layers": 0, "n_ctx": 4096})
    assert three is not None and three.max_ctx == 2048
    one = configs.step_down(base, {"extra_bufts": True, "gpu_layers": 0, "n_ctx": 4096})
    assert one is not None and not one.extra_bufts
    # Rungs that change nothing are skipped: no GPU layers were in use to begin with.
    skip = configs.step_down(one, {"extra_bufts": False, "gpu_layers": 0, "n_ctx": 1024})
    assert skip is not None and skip.max_ctx == 512 and skip.step == 2
    assert configs.step_down(skip, {"extra_bufts": False, "gpu_layers": 0, "n_ctx": 512}) is None
    assert "smaller context (512 tokens)" in configs.describe(skip)


def test_a_crash_while_loading_is_recorded_at_that_stage(tiny: Path) -> None:
    sup = supervisor(**{CRASH_ENV: "load"})
    try:
        client = sup.start()
        with pytest.raises(EngineUnavailable):
            client.load(tiny.name, n_ctx=1024, n_gpu_layers=0)
        crash = sup.wait_exit(10)
        assert crash is not None and crash.stage == "load" and crash.model.endswith(tiny.name)
        assert "while loading the model" in crash.sentence()
    finally:
        sup.stop()


def test_sigkill_mid_reply_keeps_the_text_so_far(tiny: Path, tmp_path: Path) -> None:
    from tests.tinymodel import write_streaming_model

    streamer = write_streaming_model(tmp_path / "streamer.gguf")
    sup = supervisor()
    try:
        client = sup.start()
        client.load(str(streamer), n_ctx=4096, n_gpu_layers=0)
        pieces: list[str] = []

        def on_text(piece: str) -> None:
            pieces.append(piece)
            if len(pieces) == 20:
                sup.kill(signal.SIGKILL)

        with pytest.raises(EngineUnavailable) as caught:
            client.chat(HELLO, GenerationParams(max_tokens=4000), on_text=on_text)
        assert caught.value.partial_text == "".join(pieces) and len(pieces) >= 20
        crash = sup.wait_exit(10)
        assert crash is not None and crash.how == "SIGKILL" and crash.stage == "generate"
        # Restarted: the next request works.
        client = sup.wait_ready()
        client.load(tiny.name, n_ctx=1024, n_gpu_layers=0)
        assert client.chat(HELLO, PARAMS).text
    finally:
        sup.stop()


def test_stop_ends_the_reply_within_a_token(tmp_path: Path) -> None:
    import threading

    from tests.tinymodel import write_streaming_model

    streamer = write_streaming_model(tmp_path / "streamer.gguf")
    sup = supervisor()
    try:
        client = sup.start()
        client.load(str(streamer), n_ctx=4096, n_gpu_layers=0)
        stop = threading.Event()
        pieces: list[str] = []
        after_stop = 0

        def on_text(piece: str) -> None:
            nonlocal after_stop
            pieces.append(piece)
            if stop.is_set():
                after_stop += 1
            elif len(pieces) == 5:
                stop.set()

        c = client.chat(HELLO, GenerationParams(max_tokens=4000), on_text=on_text, stop=stop)
        assert c.finish_reason == "cancelled"
        assert after_stop <= 1, after_stop  # the client reads no further than the next piece
        # The engine itself stopped (cancel, then the closed stream): it serves the next one.
        quick = client.chat(HELLO, GenerationParams(max_tokens=3))
        assert quick.completion_tokens == 3
    finally:
        sup.stop()


ORPHAN_SCRIPT = """
import os, sys, time
from assistant.clients.supervisor import Supervisor
sup = Supervisor(announce=False)
sup.start()
print(sup.pid, flush=True)
time.sleep(600)
"""


def test_the_engine_never_outlives_a_killed_parent(assistant_home: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        engine_pid = int(parent.stdout.readline())
        os.kill(engine_pid, 0)  # running
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(engine_pid, 0)
            except ProcessLookupError:
                break
            # A zombie until init reaps it counts as gone: check its state.
            try:
                state = Path(f"/proc/{engine_pid}/stat").read_text().split()[2]
            except OSError:
                break
            if state == "Z":
                break
            time.sleep(0.05)
        else:
            os.kill(engine_pid, signal.SIGKILL)
            pytest.fail("the engine process outlived its parent")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_assistant_chat_uses_a_running_engine(tiny: Path, assistant_home: Path) -> None:
    sup = Supervisor(announce=True, n_ctx=1024)
    try:
        client = sup.start()
        client.load(tiny.name, n_ctx=1024, n_gpu_layers=0)
        announced = json.loads((assistant_home / "engine.json").read_text())
        assert announced["url"] == sup.url and announced["pid"] == sup.pid
        assert (assistant_home / "engine.json").stat().st_mode & 0o777 == 0o600
        result = subprocess.run(
            [sys.executable, "-m", "assistant", "chat", "--stats", "-n", "5", "Hello"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        # The engine that answered is the running one: its model was already loaded.
        assert sup.alive and sup.crashes == []
        status = client.status()
        assert status["loaded"]["path"].endswith(tiny.name)
    finally:
        sup.stop()
    assert not (assistant_home / "engine.json").exists()


def test_a_port_in_use_is_one_clear_error_not_a_crash_loop(assistant_home: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sup = Supervisor(port=port, announce=False)
        try:
            with pytest.raises(EngineUnavailable, match=f"Could not listen on 127.0.0.1:{port}"):
                sup.start(timeout=60)
            assert sup.crash_count == 0 and not sup.gave_up
            with pytest.raises(EngineUnavailable, match="Could not listen"):
                sup.start()  # asked again: the same sentence, no new process
        finally:
            sup.stop()


def test_cli_runs_that_crash_alike_step_down_across_processes(
    tiny: Path, tmp_path: Path, assistant_home: Path
) -> None:
    env = {**os.environ, CRASH_ENV: "decode", **trusting_probe_cache(tmp_path / "cache")}

    def chat() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "assistant", "chat", "--model", tiny.name, "-n", "4", "Hi"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip

    first = chat()
    assert first.returncode == 1 and "SIGSEGV" in first.stderr and "Traceback" not in first.stderr
    second = chat()
    assert second.returncode == 1 and "extra buffer types" in second.stderr, second.stderr
    third = chat()
    assert third.returncode == 0, third.stderr
    assert "extra buffer types" in third.stderr  # the safe-mode note
