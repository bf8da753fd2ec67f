"""The GPU paths on a real Vulkan device: Mesa's lavapipe, a Vulkan implementation that runs on
the CPU (Debian's mesa-vulkan-drivers), with llama.cpp's Vulkan module built for the installed
llama-cpp-python (installers/gpu_module.sh vulkan), found in ``$ASSISTANT_TEST_VULKAN_MODULES``
and loaded, in these tests alone, from ``$ASSISTANT_GPU_MODULES``.

ggml leaves CPU-type Vulkan devices out unless ``GGML_VK_VISIBLE_DEVICES`` names them; the
loader is pointed at lavapipe alone, so a machine with a real GPU runs the same tests. Lavapipe
reports a heap of 2 GiB, which the tests use as the device's "video memory".

Without the module or lavapipe these tests skip, unless ``ASSISTANT_REQUIRE_VULKAN=1`` (CI sets
it) makes that a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.clients.supervisor import Supervisor
from assistant.engine.crash_injection import ENV as CRASH_ENV
from assistant.errors import EngineUnavailable
from assistant.hardware.backends import MODULES_ENV
from assistant.records import GenerationParams
from tests.conftest import install_model
from tests.tinymodel import CHATML_TEMPLATE, write_tiny_model

LAVAPIPE_ICDS = sorted(Path("/usr/share/vulkan/icd.d").glob("lvp_icd*.json"))
MODULES = os.environ.get("ASSISTANT_TEST_VULKAN_MODULES", "")
HAVE_MODULE = bool(MODULES) and any(Path(MODULES).glob("*ggml-vulkan*"))
MISSING = (
    ""
    if HAVE_MODULE and LAVAPIPE_ICDS
    else "needs Mesa's lavapipe (apt install mesa-vulkan-drivers) and llama.cpp's Vulkan module "
    "in $ASSISTANT_TEST_VULKAN_MODULES (installers/gpu_module.sh vulkan --into DIR)"
)
if MISSING and os.environ.get("ASSISTANT_REQUIRE_VULKAN") == "1":
    raise RuntimeError(f"ASSISTANT_REQUIRE_VULKAN=1, but the Vulkan tests {MISSING}")
pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=MISSING),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

HELLO = [{"role": "user", "content": "Hello"}]
PARAMS = GenerationParams(max_tokens=8, seed=1)
DEVICE_BYTES = 2 * 2**30  # lavapipe's heap


@pytest.fixture
def lavapipe(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment that shows ggml lavapipe, and only it; engine processes inherit it."""
    icds = os.pathsep.join(str(p) for p in LAVAPIPE_ICDS)
    env = {
        "GGML_VK_VISIBLE_DEVICES": "0",
        "VK_DRIVER_FILES": icds,
        "VK_ICD_FILENAMES": icds,
        MODULES_ENV: MODULES,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def in_fresh_process(code: str) -> dict:
    """Run ``code`` (which prints one JSON line last) in a new Python: backends load once per
    process, and this test process has loaded them without the module."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def supervisor(**env: str) -> Supervisor:
    return Supervisor(env={**os.environ, **env}, announce=False, n_ctx=1024)


@pytest.fixture
def wide_context(tmp_path: Path, assistant_home: Path) -> Path:
    """A small model whose full context needs more memory than the device has: 16 layers with a
    262,144-token context hold a 4 GiB KV cache (F16, 4 KV heads of 64), the weights a few MB."""
    model = write_tiny_model(
        tmp_path / "wide-context.gguf",
        chat_template=CHATML_TEMPLATE,
        n_layers=16,
        n_embd=256,
        n_head=4,
        n_head_kv=4,
        n_ff=512,
        context_length=262_144,
    )
    return install_model(model, assistant_home)


def test_detection_lists_the_vulkan_device_with_its_memory(lavapipe: dict[str, str]) -> None:
    found = in_fresh_process(
        "import json; from assistant.hardware import backends, machine\n"
        "hw = machine.detect()\n"
        "print(json.dumps({'offload': hw.gpu_offload, 'why': hw.why,"
        " 'devices': [d.__dict__ for d in hw.devices],"
        " 'modules': [m.sentence() for m in backends.gpu_modules()]}))"
    )
    assert found["offload"] is True
    [device] = found["devices"]
    assert device["backend"] == "Vulkan" and device["name"] == "Vulkan0"
    assert "llvmpipe" in device["description"]
    assert device["total_bytes"] == DEVICE_BYTES and 0 < device["free_bytes"] <= DEVICE_BYTES
    assert (
        found["why"].startswith("GPU: llvmpipe") and "of 2.0 GiB video memory free" in found["why"]
    )
    assert found["modules"] == ["the Vulkan module is loaded"]


def test_the_app_hears_of_the_device_from_a_child_process(
    lavapipe: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.hardware import machine

    monkeypatch.setattr(machine, "_child_answer", None)
    hw = machine.detect_in_child()
    assert hw.gpu_offload and hw.backend == "Vulkan"
    assert "llvmpipe" in hw.devices[0].description and hw.devices[0].total_bytes == DEVICE_BYTES
    # The module, and the Vulkan driver with it, ran in the child alone.
    with open("/proc/self/maps", encoding="utf-8") as maps:
        assert "ggml-vulkan" not in maps.read()


def test_a_module_that_cannot_load_is_named_and_the_cpu_runs(
    lavapipe: dict[str, str], tmp_path: Path
) -> None:
    # A module whose Vulkan loader is missing, as on a machine without a GPU driver.
    broken = tmp_path / "modules"
    broken.mkdir()
    (broken / "libggml-vulkan.so").write_bytes(b"\x7fELF not really")
    found = in_fresh_process(
        f"import os, json; os.environ[{MODULES_ENV!r}] = {str(broken)!r}\n"
        "from assistant.hardware import machine\n"
        "hw = machine.detect()\n"
        "print(json.dumps({'offload': hw.gpu_offload, 'why': hw.why}))"
    )
    assert found["offload"] is False
    assert "The Vulkan module (libggml-vulkan.so) was tried but not used" in found["why"]
    assert found["why"].endswith("running on the CPU.")


def test_a_module_that_finds_no_gpu_says_so(
    lavapipe: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a machine without a GPU: ggml passes over CPU-type Vulkan devices (lavapipe).
    monkeypatch.delenv("GGML_VK_VISIBLE_DEVICES")
    found = in_fresh_process(
        "import json; from assistant.hardware import machine\n"
        "hw = machine.detect()\n"
        "print(json.dumps({'offload': hw.gpu_offload, 'why': hw.why}))"
    )
    assert found == {
        "offload": False,
        "why": "The Vulkan module (libggml-vulkan.so) was tried but not used: it loaded, but "
        "found no GPU it can use; running on the CPU.",
    }


def test_the_fit_estimate_splits_layers_between_the_device_and_the_cpu(
    lavapipe: dict[str, str], wide_context: Path
) -> None:
    found = in_fresh_process(
        "import json; from assistant.hardware import machine; from assistant.models import fit\n"
        "from assistant.models.gguf_info import read_gguf_info\n"
        f"info = read_gguf_info({str(wide_context)!r})\n"
        "hw = machine.detect()\n"
        "full = fit.estimate(info, 0, hw)\n"
        "small = fit.estimate(info, 4096, hw)\n"
        "print(json.dumps({'full': [full.verdict.value, full.n_gpu_layers, full.detail],"
        " 'small': [small.verdict.value, small.n_gpu_layers]}))"
    )
    verdict, layers, detail = found["full"]
    assert verdict == "partial_gpu" and 0 < layers < 16
    assert f"{layers} of 16 layers fit in" in detail and "the rest" in detail
    assert found["small"] == ["full_gpu", 16]


def test_layers_on_the_device_reply_and_a_context_too_big_for_it_splits(
    lavapipe: dict[str, str], starter_model: Path, wide_context: Path
) -> None:
    sup = supervisor()
    try:
        client = sup.start()
        loaded = client.load(starter_model.name, n_ctx=2048, n_gpu_layers=-1)
        assert loaded.backend == "Vulkan" and loaded.n_gpu_layers == loaded.n_layers
        assert "run on llvmpipe" in loaded.backend_note
        reply = client.chat(HELLO, PARAMS)
        assert reply.text and reply.finish_reason in ("stop", "length")

        # The whole context does not fit on the device: the fit estimate moves layers (and
        # their part of the cache) to the CPU, and the model still answers.
        loaded = client.load(wide_context.name, n_ctx=0, n_gpu_layers=-1)
        assert loaded.n_ctx == 262_144
        assert 0 < loaded.n_gpu_layers < 16, loaded.backend_note
        assert f"{loaded.n_gpu_layers} of 16 layers" in loaded.backend_note
        reply = client.chat(HELLO, PARAMS)
        assert reply.text
    finally:
        sup.stop()


def test_a_load_the_device_refuses_falls_back_to_fewer_layers_then_the_cpu(
    lavapipe: dict[str, str], wide_context: Path
) -> None:
    # Lavapipe does not enforce its heap; ggml's own limit on one allocation makes the device
    # refuse the cache of every offloaded layer (256 MiB each), as a full GPU would.
    limit = str(64 * 2**20)
    sup = supervisor(GGML_VK_FORCE_MAX_ALLOCATION_SIZE=limit, GGML_VK_FORCE_MAX_BUFFER_SIZE=limit)
    try:
        client = sup.start()
        loaded = client.load(wide_context.name, n_ctx=0, n_gpu_layers=-1)
        assert loaded.n_gpu_layers == 0 and loaded.backend == "CPU"
        assert loaded.backend_note.startswith("It did not fit in video memory with ")
        assert loaded.backend_note.endswith("of 16 layers, nor with fewer; running on the CPU.")
        assert client.chat(HELLO, PARAMS).text
        assert sup.crashes == []
    finally:
        sup.stop()


def test_a_crash_loading_onto_the_device_steps_down_to_no_gpu_layers(
    lavapipe: dict[str, str], starter_model: Path
) -> None:
    sup = supervisor(**{CRASH_ENV: "gpu-load"})
    try:
        client = sup.start()
        for attempt in (1, 2):
            with pytest.raises(EngineUnavailable):
                client.load(starter_model.name, n_ctx=1024, n_gpu_layers=-1)
            crash = sup.wait_exit(20)
            assert crash is not None and crash.stage == "load", attempt
            client = sup.wait_ready()
        assert crash.fallback == "it now runs without GPU layers"
        loaded = client.load(starter_model.name, n_ctx=1024, n_gpu_layers=-1)
        assert loaded.n_gpu_layers == 0 and loaded.backend == "CPU"
        assert "without GPU layers" in loaded.safe_mode_note
        assert client.chat(HELLO, PARAMS).text  # the next message works
    finally:
        sup.stop()
