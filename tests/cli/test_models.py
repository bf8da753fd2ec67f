"""``assistant models ...`` run as a user would: a real process against the local fake Hub."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from assistant.models import downloads
from tests.tinymodel import write_tiny_model

if TYPE_CHECKING:
    from tests.hfserver import HFServer

# The hf_server fixture (a plugin, so pytest rewrites its asserts and nothing is imported twice).
pytest_plugins = ["tests.hfserver"]

REPO = "tests/Tiny-GGUF"
FILE = "tiny-F32.gguf"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", "models", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        check=False,
    )


@pytest.fixture
def server(hf_server: HFServer, tmp_path: Path) -> HFServer:
    data = write_tiny_model(tmp_path / FILE, n_embd=256, n_ff=256).read_bytes()
    hf_server.add_repo(REPO, {FILE: data}, downloads=5)
    return hf_server


def test_search_show_pull_list_rm(server: HFServer, assistant_home: Path) -> None:
    found = cli("search", "tiny")
    assert found.returncode == 0 and REPO in found.stdout

    shown = cli("show", REPO, "--ctx", "1024")
    assert shown.returncode == 0, shown.stderr
    assert "F32" in shown.stdout and "<- recommended" in shown.stdout
    assert any(label in shown.stdout for label in ("CPU only", "GPU offload"))

    pulled = cli("pull", f"{REPO}:F32")
    assert pulled.returncode == 0, pulled.stderr
    assert (assistant_home / "models" / FILE).exists()

    listed = cli("list")
    assert FILE in listed.stdout
    removed = cli("rm", FILE)
    assert removed.returncode == 0 and "freed" in removed.stdout
    assert not (assistant_home / "models" / FILE).exists()


def test_pull_interrupted_then_resumed(server: HFServer, assistant_home: Path) -> None:
    size = len(server.repos[REPO].files[FILE].data)
    # Midway for sure: the server holds the rest back until the interrupt has been handled
    # (a trickle could finish first on a busy machine, and once did).
    held = 100_000
    server.hold_after(FILE, held)
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "models", "pull", f"{REPO}/{FILE}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
        # Ctrl-C as at a terminal: a run started in the background (`.ci/run &`) inherits
        # SIGINT ignored, and Python then never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    part = downloads.partial_path(REPO, FILE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < held):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = proc.communicate(timeout=30)
    server.release()
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    kept = part.stat().st_size
    assert kept == held < size
    assert "interrupted" in cli("list").stdout

    again = cli("pull", f"{REPO}/{FILE}")
    assert again.returncode == 0, again.stderr
    assert server.body_gets(FILE)[-1].range == f"bytes={kept}-"
    assert server.body_bytes(FILE) - size < size * 0.01


def test_expected_failures_are_one_line(server: HFServer) -> None:
    for args in (
        ["pull", "nobody/nothing"],
        ["show", "nobody/nothing"],
        ["pull", "nonsense"],
        ["rm", "missing.gguf"],
        ["pull", f"{REPO}:Q2_K"],
    ):
        result = cli(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_show_falls_back_to_catalog_offline() -> None:
    # conftest's HF_ENDPOINT points nowhere.
    result = cli("show", "Qwen/Qwen3-8B-GGUF")
    assert result.returncode == 0, result.stderr
    assert "built-in catalog" in result.stdout and "Q4_K_M" in result.stdout


def test_catalog_ends_with_the_model_recommended_for_this_computer() -> None:
    result = cli("catalog")
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()
    assert last[-2].startswith("Recommended for this computer: ") and "tokens/s" in last[-2]
    assert last[-1].strip().startswith("assistant models pull ")
