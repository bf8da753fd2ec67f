"""GPUs found without llama.cpp, on sysfs and procfs trees laid out as Linux lays them out (this
machine has no GPU): a GPU the CPU-only build cannot use is named, with the command for one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from assistant.hardware import gpus
from assistant.hardware.gpus import find_gpus, rebuild_command, unused_gpu_sentence

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sysfs: Linux")


def card(root: Path, n: int, slot: str, vendor: str, device: str, **files: str) -> None:
    """/sys/class/drm/cardN -> /sys/devices/.../SLOT, as the kernel links them."""
    pci = root / "sys" / "devices" / "pci0000:00" / "0000:00:01.0" / slot
    pci.mkdir(parents=True)
    (pci / "vendor").write_text(vendor + "\n")
    (pci / "device").write_text(device + "\n")
    for name, text in files.items():
        (pci / name).write_text(text + "\n")
    drm = root / "sys" / "class" / "drm" / f"card{n}"
    drm.mkdir(parents=True)
    (drm / "device").symlink_to(pci)
    connector = root / "sys" / "class" / "drm" / f"card{n}-HDMI-A-1"
    connector.mkdir()
    (connector / "device").symlink_to(pci)


def test_nvidia_is_named_by_its_driver_and_amd_by_its_product_name(tmp_path: Path) -> None:
    card(tmp_path, 0, "0000:01:00.0", "0x10de", "0x2786")
    info = tmp_path / "proc" / "driver" / "nvidia" / "gpus" / "0000:01:00.0"
    info.mkdir(parents=True)
    (info / "information").write_text("Model: \t\t NVIDIA GeForce RTX 4070\nIRQ:   130\n")
    card(tmp_path, 1, "0000:03:00.0", "0x1002", "0x73bf",
         product_name="Radeon RX 6800", mem_info_vram_total=str(16 << 30))  # fmt: skip
    card(tmp_path, 2, "0000:00:02.0", "0x1af4", "0x1050")  # virtio-gpu: not a GPU to use
    found = find_gpus(tmp_path, lspci=False)
    assert [(g.vendor, g.name, g.backend) for g in found] == [
        ("NVIDIA", "NVIDIA GeForce RTX 4070", "CUDA"),
        ("AMD", "AMD Radeon RX 6800", "Vulkan"),
    ]
    assert found[1].vram_bytes == 16 << 30


def test_the_sentence_names_the_gpu_and_the_command_for_a_gpu_build(tmp_path: Path) -> None:
    card(tmp_path, 0, "0000:01:00.0", "0x10de", "0x2786")
    info = tmp_path / "proc" / "driver" / "nvidia" / "gpus" / "0000:01:00.0"
    info.mkdir(parents=True)
    (info / "information").write_text("Model: NVIDIA GeForce RTX 4070\n")
    sentence = unused_gpu_sentence(find_gpus(tmp_path, lspci=False))
    assert sentence.startswith("NVIDIA GeForce RTX 4070 found, but this llama.cpp build is ")
    assert 'CMAKE_ARGS="-DGGML_CUDA=on"' in sentence and gpus.PINNED in sentence
    assert unused_gpu_sentence([]) == ""


def test_an_unnamed_intel_gpu_gets_its_pci_ids_and_vulkan(tmp_path: Path) -> None:
    card(tmp_path, 0, "0000:00:02.0", "0x8086", "0x46a6")
    [gpu] = find_gpus(tmp_path, lspci=False)
    assert gpu.name == "Intel GPU (PCI 8086:46a6)" and gpu.backend == "Vulkan"
    assert rebuild_command(gpu) == "installers/gpu_module.sh vulkan"
    assert unused_gpu_sentence([gpu]).endswith(": installers/gpu_module.sh vulkan")


def test_the_pin_is_pyproject_s(tmp_path: Path) -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert f'"{gpus.PINNED}"' in pyproject


def test_this_machine_s_own_bus_is_read_without_error() -> None:
    """Whatever this machine has (here: no GPU), only NVIDIA, AMD and Intel GPUs are named."""
    assert all(g.vendor in ("NVIDIA", "AMD", "Intel") for g in find_gpus())


@pytest.mark.skipif(__import__("shutil").which("gcc") is None, reason="needs gcc")
def test_a_gpu_module_without_its_driver_is_named_with_the_loader_s_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.hardware import backends, machine
    from tests.elf import shared_object

    # A GPU module on a machine without its driver.
    shared_object(tmp_path, "libggml-vulkan.so", ["libvulkan-missing.so.1"])
    (tmp_path / "libggml-cpu-haswell.so").write_bytes(b"")  # a CPU variant: not a GPU module
    [module] = backends.gpu_modules(tmp_path)
    assert (module.name, module.loaded) == ("Vulkan", False)
    assert "libvulkan-missing.so.1" in module.why
    assert module.sentence().startswith("the Vulkan module (libggml-vulkan.so) was tried but ")
    monkeypatch.setattr(backends, "gpu_modules", lambda: [module])
    reason = machine.cpu_only_reason()
    assert reason.startswith("The Vulkan module") and reason.endswith("running on the CPU.")
