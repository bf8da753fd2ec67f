"""The CPU probe: a child process tries llama.cpp's extra buffer types (AMX) once; a crash there
turns them off for every load, and the answer is cached per llama.cpp build and CPU."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from assistant.engine import cpu_probe
from assistant.engine.crash_injection import ENV as CRASH_ENV


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ASSISTANT_CACHE", str(tmp_path / "cache"))
    cpu_probe.forget()
    yield tmp_path / "cache"
    cpu_probe.forget()


def test_a_crashing_probe_is_detected(own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRASH_ENV, "probe")
    ok, detail = cpu_probe.run_probe()
    assert (ok, detail) == (False, "died of SIGSEGV")


def test_the_probe_runs_once_and_its_answer_is_cached(
    own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu_probe, "needs_probe", lambda: True)
    runs: list[int] = []

    def fake_run() -> tuple[bool, str]:
        runs.append(1)
        return False, "died of SIGSEGV"

    monkeypatch.setattr(cpu_probe, "run_probe", fake_run)
    assert cpu_probe.extra_bufts_work() is False
    assert cpu_probe.extra_bufts_work() is False  # in-process answer
    cpu_probe.forget()
    assert cpu_probe.extra_bufts_work() is False  # from the cache file
    assert runs == [1]
    assert (own_cache / "cpu-probe.json").stat().st_mode & 0o777 == 0o600


def test_the_real_probe_agrees_with_this_machine(own_cache: Path) -> None:
    """On a CPU without AMX nothing needs probing; with AMX the child tells (here or in CI)."""
    if not cpu_probe.needs_probe():
        assert cpu_probe.extra_bufts_work() is True
        return
    ok, detail = cpu_probe.run_probe()
    assert detail in ("ok", "died of SIGSEGV", "died of SIGILL", "died of SIGBUS"), detail
    assert ok == (detail == "ok")


def _weight_buffers(caplog: pytest.LogCaptureFixture) -> set[str]:
    return {
        line.split("model buffer")[0].split()[-1]
        for r in caplog.records
        if r.name == "llama_cpp" and "model buffer size" in (line := r.getMessage())
    }


def test_loads_use_extra_buffer_types_only_where_the_probe_allows(
    own_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    from assistant.engine.llama import Engine

    model = cpu_probe.write_probe_model(tmp_path / "q8.gguf")
    caplog.set_level(logging.DEBUG, logger="llama_cpp")
    engine = Engine()
    try:
        monkeypatch.setattr(cpu_probe, "extra_bufts_work", lambda: True)
        engine.load(model, n_ctx=256, n_gpu_layers=0)  # loading alone never reaches AMX code
        allowed = _weight_buffers(caplog)
        caplog.clear()
        monkeypatch.setattr(cpu_probe, "extra_bufts_work", lambda: False)
        engine.load(model, n_ctx=256, n_gpu_layers=0)
        refused = _weight_buffers(caplog)
    finally:
        engine.close()
    extra = {"AMX", "CPU_REPACK"}
    if not allowed & extra:
        pytest.skip(f"this CPU has no extra buffer type for Q8_0 ({allowed})")
    assert not refused & extra, refused
