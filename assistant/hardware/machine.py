"""What this machine offers a model: RAM, and the GPUs the installed llama.cpp build can use.

GPU facts come from llama.cpp itself (ggml's backend device registry), not from nvidia-smi or
similar: a CUDA card is no use to a CPU-only build, and the device's free memory as ggml sees it
is what a load will have to fit into.
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# ggml_backend_dev_type (ggml-backend.h)
_DEV_CPU, _DEV_GPU, _DEV_IGPU, _DEV_ACCEL, _DEV_META = range(5)


@dataclass(frozen=True)
class GpuDevice:
    name: str  # ggml's device name, e.g. "CUDA0", "Metal", "Vulkan0"
    description: str  # e.g. "NVIDIA GeForce RTX 4070"
    backend: str  # the backend registry's name: "CUDA", "Metal", "Vulkan", ...
    integrated: bool  # shares system RAM (Apple Silicon, iGPUs)
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class Hardware:
    total_ram: int
    available_ram: int
    gpu_offload: bool  # llama_supports_gpu_offload(): the build has a GPU backend
    backend: str  # "CPU" or the first GPU device's backend ("CUDA", "Metal", ...)
    devices: tuple[GpuDevice, ...] = field(default=())
    why: str = ""  # a sentence for the user explaining the GPU situation

    @property
    def vram_free(self) -> int:
        return sum(d.free_bytes for d in self.devices)

    @property
    def vram_total(self) -> int:
        return sum(d.total_bytes for d in self.devices)

    @property
    def unified_memory(self) -> bool:
        return bool(self.devices) and all(d.integrated for d in self.devices)


def detect() -> Hardware:
    """RAM and GPU as llama.cpp sees them now, in this process: the engine's (loading llama.cpp's
    GPU modules runs the GPU driver's code; the app and the CLI use detect_in_child())."""
    total, available = memory()
    offload, devices, backend, why = _gpu()
    return Hardware(total, available, offload, backend, tuple(devices), why)


CHILD_FLAG = "--hardware"  # `assistant --hardware`: detect() as JSON, for detect_in_child()
_CHILD_TTL_S = 30.0
_child_answer: tuple[float, Hardware, bool] | None = None  # when, the answer, whether it failed
_child_lock = threading.Lock()


def detect_in_child(timeout: float = 60.0) -> Hardware:
    """detect(), with the GPU part asked of a child process, so that a GPU driver that crashes
    or hangs while llama.cpp looks at it cannot take the app's window (or the CLI) with it.
    The GPU answer is kept for 30 seconds (a child costs about a second); RAM is read each
    time. A child that dies or does not answer leaves no GPU, says why, and is not asked again
    in this process."""
    import dataclasses
    import time

    global _child_answer
    with _child_lock:  # one child at a time; callers meanwhile wait for its answer
        now = time.monotonic()
        if _child_answer is None or (
            not _child_answer[2] and now - _child_answer[0] >= _CHILD_TTL_S
        ):
            gpu, failed = _ask_child(timeout)
            _child_answer = (now, gpu, failed)
        gpu = _child_answer[1]
    total, available = memory()
    return dataclasses.replace(gpu, total_ram=total, available_ram=available)


def _ask_child(timeout: float) -> tuple[Hardware, bool]:
    """The child's answer (RAM left at 0), and whether the check failed."""
    import json

    from assistant import paths
    from assistant.errors import describe_exit

    try:
        done = subprocess.run(
            paths.assistant_command(CHILD_FLAG),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the check stopped: {describe_exit(done.returncode)}")
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        gpu = Hardware(
            0,
            0,
            bool(answer["gpu_offload"]),
            str(answer["backend"]),
            tuple(GpuDevice(**d) for d in answer["devices"]),
            str(answer["why"]),
        )
        return gpu, False
    except subprocess.TimeoutExpired:
        why = f"no answer in {timeout:.0f} s"
    except (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        why = str(exc)
    return Hardware(0, 0, False, "CPU", (), _no_gpu_answer(why)), True


def _no_gpu_answer(why: str) -> str:
    log.warning("Looking for GPUs failed: %s", why)
    return f"Looking for GPUs through llama.cpp failed ({why}); counting on the CPU alone."


def print_child_answer() -> int:
    """The child's side of detect_in_child()."""
    import dataclasses
    import json

    hw = detect()
    answer = {
        "gpu_offload": hw.gpu_offload,
        "backend": hw.backend,
        "devices": [dataclasses.asdict(d) for d in hw.devices],
        "why": hw.why,
    }
    print(json.dumps(answer), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# RAM


def memory() -> tuple[int, int]:
    """(total, available) bytes of system RAM; available includes reclaimable page cache."""
    try:
        if sys.platform.startswith("linux"):
            return _linux_memory()
        if sys.platform == "darwin":
            return _mac_memory()
        if sys.platform == "win32":
            return _windows_memory()
    except (OSError, ValueError) as exc:
        log.warning("Could not read memory size: %s", exc)
    try:  # POSIX fallback
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page
    except (ValueError, OSError, AttributeError):
        return 0, 0


def _linux_memory() -> tuple[int, int]:
    fields: dict[str, int] = {}
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                fields[key] = int(parts[0]) * 1024  # values are in kB
    total = fields["MemTotal"]
    # MemAvailable (kernel >= 3.14) counts reclaimable cache; MemFree alone would read "full".
    available = fields.get("MemAvailable") or fields.get("MemFree", 0) + fields.get("Cached", 0)
    total, available = _cgroup_limit(total, available)
    return total, available


def _cgroup_limit(total: int, available: int) -> tuple[int, int]:
    """A container's memory limit is what a model has to fit into, not the host's RAM."""
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            raw = f.read().strip()
        if raw == "max":
            return total, available
        limit = int(raw)
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            used = int(f.read().strip())
    except (OSError, ValueError):
        return total, available
    if limit >= total:
        return total, available
    return limit, max(0, min(available, limit - used))


def _mac_memory() -> tuple[int, int]:
    total = int(
        subprocess.run(
            ["sysctl", "-n", "hw.memsize"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
    )
    out = subprocess.run(["vm_stat"], capture_output=True, text=True, check=True, timeout=5).stdout
    page = 4096
    pages: dict[str, int] = {}
    for line in out.splitlines():
        if "page size of" in line:
            page = int(line.split("page size of")[1].split()[0])
        key, _, value = line.partition(":")
        value = value.strip().rstrip(".")
        if value.isdigit():
            pages[key.strip()] = int(value)
    free = sum(
        pages.get(k, 0)
        for k in ("Pages free", "Pages inactive", "Pages speculative", "Pages purgeable")
    )
    return total, min(total, free * page)


def _windows_memory() -> tuple[int, int]:
    class MEMORYSTATUSEX(ctypes.Structure):
        _fields_ = [
            ("dwLength", ctypes.c_ulong),
            ("dwMemoryLoad", ctypes.c_ulong),
            ("ullTotalPhys", ctypes.c_ulonglong),
            ("ullAvailPhys", ctypes.c_ulonglong),
            ("ullTotalPageFile", ctypes.c_ulonglong),
            ("ullAvailPageFile", ctypes.c_ulonglong),
            ("ullTotalVirtual", ctypes.c_ulonglong),
            ("ullAvailVirtual", ctypes.c_ulonglong),
            ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
        ]

    status = MEMORYSTATUSEX()
    status.dwLength = ctypes.sizeof(MEMORYSTATUSEX)
    if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
        raise OSError("GlobalMemoryStatusEx failed")
    return int(status.ullTotalPhys), int(status.ullAvailPhys)


# ---------------------------------------------------------------------------------------------
# GPU, through llama.cpp


def _gpu() -> tuple[bool, list[GpuDevice], str, str]:
    try:
        import llama_cpp

        from assistant.hardware import backends

        backends.ensure_loaded()
    except Exception as exc:  # a broken install must not break the Models page
        return False, [], "CPU", f"llama.cpp could not be loaded ({exc}); no GPU information."
    offload = bool(llama_cpp.llama_supports_gpu_offload())
    try:
        devices = _ggml_devices()
    except (OSError, AttributeError) as exc:
        # Older builds do not export the device registry: fall back to the offload flag alone.
        log.info("ggml device registry unavailable: %s", exc)
        devices = []
    if not offload:
        return False, [], "CPU", cpu_only_reason()
    if not devices:
        return (
            True,
            [],
            "GPU",
            ("This llama.cpp build supports GPU offload, but it found no usable GPU device."),
        )
    first = devices[0]
    total_gb = sum(d.total_bytes for d in devices) / 2**30
    free_gb = sum(d.free_bytes for d in devices) / 2**30
    names = ", ".join(d.description or d.name for d in devices)
    if all(d.integrated for d in devices):
        why = f"GPU: {names} via {first.backend}, sharing system memory ({free_gb:.1f} GiB free)."
    else:
        why = (
            f"GPU: {names} via {first.backend}, {free_gb:.1f} of {total_gb:.1f} GiB "
            "video memory free."
        )
    return True, devices, first.backend, why


def cpu_only_reason() -> str:
    """Why llama.cpp runs on the CPU here, for a person: a GPU module that was tried and not
    used (and why), else a GPU this build cannot drive (and the command for one that can)."""
    from assistant.hardware import backends, gpus

    try:
        tried = [m for m in backends.gpu_modules() if not m.loaded]
    except Exception as exc:  # noqa: BLE001 - a broken install must not hide the rest
        log.info("Could not list llama.cpp's GPU modules: %s", exc)
        tried = []
    if tried:
        said = "; ".join(m.sentence() for m in tried)
        return f"{said[0].upper()}{said[1:]}; running on the CPU."
    unused = gpus.unused_gpu_sentence(gpus.find_gpus())
    return unused or "This llama.cpp build has no GPU support; running on the CPU."


def _ggml_devices() -> list[GpuDevice]:
    from assistant.hardware import backends

    lib = backends.ggml()

    vp = ctypes.c_void_p
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_count.argtypes = []
    lib.ggml_backend_dev_get.restype = vp
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_name.restype = ctypes.c_char_p
    lib.ggml_backend_dev_name.argtypes = [vp]
    lib.ggml_backend_dev_description.restype = ctypes.c_char_p
    lib.ggml_backend_dev_description.argtypes = [vp]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [vp]
    lib.ggml_backend_dev_memory.restype = None
    lib.ggml_backend_dev_memory.argtypes = [
        vp,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    lib.ggml_backend_dev_backend_reg.restype = vp
    lib.ggml_backend_dev_backend_reg.argtypes = [vp]
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_reg_name.argtypes = [vp]

    devices = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        kind = lib.ggml_backend_dev_type(dev)
        if kind not in (_DEV_GPU, _DEV_IGPU):
            continue
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        reg = lib.ggml_backend_dev_backend_reg(dev)
        backend = (
            (lib.ggml_backend_reg_name(reg) or b"GPU").decode(errors="replace") if reg else "GPU"
        )
        devices.append(
            GpuDevice(
                name=(lib.ggml_backend_dev_name(dev) or b"").decode(errors="replace"),
                description=(lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace"),
                backend=backend,
                integrated=kind == _DEV_IGPU or backend == "Metal",
                free_bytes=int(free.value),
                total_bytes=int(total.value),
            )
        )
    return devices


# ---------------------------------------------------------------------------------------------
# CPU


def math_cores() -> int:
    """CPU threads worth giving llama.cpp: physical cores, counted as llama.cpp's
    ``cpu_get_num_math`` counts them (one per distinct set of hyperthread siblings).

    ``os.cpu_count() // 2`` assumes two threads per core; a 2-vCPU VM has two cores with no
    siblings, and halving there costs 40% of the decode speed.
    """
    logical = os.cpu_count() or 1
    if sys.platform.startswith("linux"):
        siblings = set()
        for cpu in range(logical * 2):
            try:
                with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings") as f:
                    siblings.add(f.read().strip())
            except OSError:
                if cpu >= logical:
                    break
        if siblings:
            return len(siblings)
    elif sys.platform == "darwin":
        for key in ("hw.perflevel0.physicalcpu", "hw.physicalcpu"):
            try:
                out = subprocess.run(
                    ["sysctl", "-n", key], capture_output=True, text=True, timeout=5, check=True
                ).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                continue
            if out.isdigit() and int(out) > 0:
                return int(out)
    return max(1, logical // 2) if logical >= 4 else logical


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_name() -> str:
    """The CPU's model name, for keying what was learnt about this machine."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
