"""llama.cpp's backends, loaded before the first model.

A native build links its CPU backend in. A portable build (``installers/build.sh``: no
``-march=native``, ``GGML_BACKEND_DL`` and ``GGML_CPU_ALL_VARIANTS``) ships one CPU module per
instruction set (``libggml-cpu-haswell.so``, ``-skylakex``, ``-sapphirerapids``...) and ggml picks
the best one this CPU runs at load time. ggml looks for those modules next to the executable,
which for Python is the interpreter's folder; here it is told to look beside llama.cpp itself.

GPU modules (``libggml-vulkan.so``, ``libggml-cuda.so``) load the same way, and one that cannot
(no driver, a driver too old, no device) is skipped by ggml without a word; ``gpu_modules()`` says
which were tried and why each was not used, for the status bar and the self-test.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_lock = threading.Lock()
_done = False
GPU_MODULES = ("vulkan", "cuda", "hip", "sycl", "metal", "opencl")  # libggml-NAME.so


@dataclass(frozen=True)
class GpuModule:
    name: str  # "Vulkan", "CUDA"...
    path: Path
    loaded: bool
    why: str = ""  # why it was not used: the loader's words, or that it found no device

    def sentence(self) -> str:
        if self.loaded:
            return f"the {self.name} module is loaded"
        return f"the {self.name} module ({self.path.name}) was tried but not used: {self.why}"


def library_dir() -> Path:
    import llama_cpp

    return Path(llama_cpp.__file__).resolve().parent / "lib"


def is_portable_build() -> bool:
    """Whether the installed llama.cpp chooses its CPU backend at run time."""
    return any(library_dir().glob("*ggml-cpu-*"))


def ensure_loaded() -> None:
    """Load llama.cpp's backends once per process (idempotent, thread-safe)."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
        if not is_portable_build():
            return
        from llama_cpp._ggml import libggml

        load = libggml.ggml_backend_load_all_from_path
        load.argtypes = [ctypes.c_char_p]
        load.restype = None
        load(str(library_dir()).encode())
        log.info("Loaded llama.cpp's backends from %s (portable build)", library_dir())


def gpu_modules(folder: Path | None = None) -> list[GpuModule]:
    """The GPU backend modules a portable build ships, and for each whether ggml registered it
    (call after ensure_loaded) or, if not, why: what the dynamic loader said, or no device."""
    folder = folder if folder is not None else library_dir()
    registered = _registered_backends() if folder == library_dir() else set()
    modules = []
    for path in sorted(folder.glob("*ggml-*")):
        kind = path.name.split("ggml-", 1)[1].split(".", 1)[0].lower()
        if kind not in GPU_MODULES or path.suffix not in (".so", ".dll", ".dylib"):
            continue
        name = {"cuda": "CUDA", "hip": "ROCm", "sycl": "SYCL", "opencl": "OpenCL"}.get(
            kind, kind.capitalize()
        )
        if name.lower() in registered:
            modules.append(GpuModule(name, path, True))
            continue
        try:
            ctypes.CDLL(str(path))
        except OSError as exc:  # a library it needs is missing: the driver, most often
            modules.append(GpuModule(name, path, False, str(exc).removeprefix(f"{path}: ")))
            continue
        modules.append(GpuModule(name, path, False, "it loads, but found no usable device"))
    return modules


def _registered_backends() -> set[str]:
    """The names of the backends ggml registered in this process, lower case."""
    try:
        from llama_cpp._ggml import libggml
    except (ImportError, OSError):
        return set()
    try:
        count = libggml.ggml_backend_reg_count
        get = libggml.ggml_backend_reg_get
        name = libggml.ggml_backend_reg_name
    except AttributeError:
        return set()
    count.restype, count.argtypes = ctypes.c_size_t, []
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    return {(name(get(i)) or b"").decode(errors="replace").lower() for i in range(count())}
