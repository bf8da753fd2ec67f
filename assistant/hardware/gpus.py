"""The GPUs in this machine, found without llama.cpp (the kernel's PCI devices, NVIDIA's driver),
so that a GPU the installed llama.cpp build cannot use is named, with the command that gives a
build that can, instead of a silent "running on CPU".

Linux reads ``/sys/class/drm/card*/device`` (PCI vendor, and AMD's VRAM size and product name)
and ``/proc/driver/nvidia/gpus/*/information`` (the model name); ``lspci`` names the others when it
is there. Virtual and server display adapters (virtio, QEMU, VMware, ASPEED, Matrox) are not GPUs
worth offloading to and are left out. Elsewhere nothing is detected here (macOS builds carry
Metal; Windows is not probed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

NVIDIA, AMD, INTEL = "0x10de", "0x1002", "0x8086"
VENDORS = {NVIDIA: "NVIDIA", AMD: "AMD", INTEL: "Intel"}
PINNED = "llama-cpp-python==0.3.36"  # pyproject.toml's pin: a rebuild keeps the same version


@dataclass(frozen=True)
class FoundGpu:
    vendor: str  # "NVIDIA", "AMD", "Intel"
    name: str  # "NVIDIA GeForce RTX 4070", or the vendor and PCI ids when nothing names it
    vram_bytes: int | None = None
    pci_slot: str = ""

    @property
    def backend(self) -> str:
        """The llama.cpp backend that runs on it: CUDA for NVIDIA, Vulkan for the others."""
        return "CUDA" if self.vendor == "NVIDIA" else "Vulkan"


def find_gpus(sys_root: Path = Path("/"), lspci: bool = True) -> list[FoundGpu]:
    """The NVIDIA, AMD and Intel GPUs on the PCI bus, named as well as this system can."""
    if not sys.platform.startswith("linux"):
        return []
    nvidia_names = _nvidia_names(sys_root / "proc" / "driver" / "nvidia" / "gpus")
    found: list[FoundGpu] = []
    seen: set[str] = set()
    for card in sorted((sys_root / "sys" / "class" / "drm").glob("card[0-9]*")):
        device = card / "device"
        vendor = _read(device / "vendor")
        if vendor not in VENDORS or "-" in card.name:  # card0-HDMI-A-1: a connector
            continue
        slot = _pci_slot(device)
        if slot in seen:
            continue
        seen.add(slot)
        name = (
            nvidia_names.get(slot.lower())
            or _read(device / "product_name")
            or (_lspci_name(slot) if lspci else None)
            or f"{VENDORS[vendor]} GPU (PCI {vendor[2:]}:{(_read(device / 'device') or '0x?')[2:]})"
        )
        vram = _read(device / "mem_info_vram_total")
        found.append(
            FoundGpu(
                VENDORS[vendor],
                name if name.startswith(VENDORS[vendor]) else f"{VENDORS[vendor]} {name}",
                int(vram) if vram and vram.isdigit() else None,
                slot,
            )
        )
    # NVIDIA's driver lists GPUs that have no DRM node (a compute card with no display).
    for slot, name in nvidia_names.items():
        if slot not in {s.lower() for s in seen}:
            found.append(FoundGpu("NVIDIA", name, None, slot))
    return found


def rebuild_command(gpu: FoundGpu) -> str:
    """The one command that gives a source install a GPU build for ``gpu``.

    Vulkan: llama.cpp's Vulkan module alone, built from the same sources as the installed
    llama-cpp-python and loaded into it (installers/gpu_module.sh, which finds a shader compiler
    with cooperative matrices, fetching Debian 13's where the system's lacks them). CUDA: the
    well-trodden rebuild of llama-cpp-python with NVIDIA's toolkit.
    """
    if gpu.backend != "CUDA":
        return "installers/gpu_module.sh vulkan"
    return (
        'CMAKE_ARGS="-DGGML_CUDA=on" .venv/bin/pip install --force-reinstall --no-cache-dir '
        f'--no-deps "{PINNED}"'
    )


def unused_gpu_sentence(gpus: list[FoundGpu]) -> str:
    """What to tell a person whose GPU the CPU-only build cannot use ("" when there is none)."""
    if not gpus:
        return ""
    gpu = next((g for g in gpus if g.vendor != "Intel"), gpus[0])  # the discrete one first
    needs = (
        "NVIDIA's CUDA toolkit"
        if gpu.backend == "CUDA"
        else "CMake, a C++ compiler and the GPU's Vulkan driver; about 6 minutes"
    )
    return (
        f"{gpu.name} found, but this llama.cpp build is CPU-only, so it runs on the CPU. For a "
        f"{gpu.backend} build of a source install (it needs {needs}): {rebuild_command(gpu)}"
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _pci_slot(device: Path) -> str:
    try:
        return device.resolve().name  # /sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0
    except OSError:
        return device.parent.name


def _nvidia_names(gpus: Path) -> dict[str, str]:
    names = {}
    for info in sorted(gpus.glob("*/information")):
        text = _read(info) or ""
        match = re.search(r"^Model:\s*(.+)$", text, re.MULTILINE)
        if match:
            names[info.parent.name.lower()] = match.group(1).strip()
    return names


def _lspci_name(slot: str) -> str | None:
    lspci = shutil.which("lspci")
    if lspci is None or not slot:
        return None
    try:
        out = subprocess.run(
            [lspci, "-mm", "-s", slot], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = re.findall(r'"([^"]*)"', out)
    return f"{fields[1]} {fields[2]}".strip() if len(fields) >= 3 else None
