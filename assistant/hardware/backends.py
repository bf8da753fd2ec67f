"""llama.cpp's backends, loaded before the first model.

A native build links its CPU backend in. A portable build (``installers/build.sh``: no
``-march=native``, ``GGML_BACKEND_DL`` and ``GGML_CPU_ALL_VARIANTS``) ships one CPU module per
instruction set (``libggml-cpu-haswell.so``, ``-skylakex``, ``-sapphirerapids``...) and ggml picks
the best one this CPU runs at load time. ggml looks for those modules next to the executable,
which for Python is the interpreter's folder; here it is told to look beside llama.cpp itself.

GPU modules (``libggml-vulkan.so``, ``libggml-cuda.so``) load the same way, and one that cannot
(no driver, a driver too old, no device) is skipped by ggml without a word; ``gpu_modules()`` says
which were tried and why each was not used, for the status bar and the self-test.

A GPU module can also come on its own, built from the same llama.cpp sources as the installed
llama-cpp-python (``installers/gpu_module.sh``): it goes in ``extra_module_dirs()`` (the data
folder's ``gpu-modules/<llama-cpp-python version>``, or ``$ASSISTANT_GPU_MODULES``) and is loaded
into whichever build is installed, portable or not. The version in the folder's name keeps a
module from meeting a ggml it was not built with.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_lock = threading.Lock()
_done = False
GPU_MODULES = ("vulkan", "cuda", "hip", "sycl", "metal", "opencl")  # libggml-NAME.so
MODULES_ENV = "ASSISTANT_GPU_MODULES"  # a folder of GPU modules built for this llama.cpp
_failed: dict[Path, str] = {}  # extra modules ggml refused, and why


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


def ggml() -> ctypes.CDLL:
    """ggml as llama.cpp uses it, for calls into its backend registry.

    ``llama_cpp._ggml`` opens ``libggml.so`` by that name, and pip installs that name as a copy
    of ``libggml.so.0`` (the one libllama is linked with), not as a link to it: a second ggml
    with a registry of its own, where a loaded module would be invisible to llama.cpp. Symbols
    looked up through libllama's handle come from libllama's own dependencies.
    """
    import sys

    if sys.platform == "win32":  # one ggml.dll, and a DLL's lookup finds its own exports only
        from llama_cpp._ggml import libggml

        return libggml
    from llama_cpp import llama_cpp as bindings

    return bindings._lib


def library_dir() -> Path:
    import llama_cpp

    return Path(llama_cpp.__file__).resolve().parent / "lib"


def extra_module_dirs() -> list[Path]:
    """Folders of GPU modules built apart from llama-cpp-python for its exact version."""
    import llama_cpp

    from assistant import paths

    folders = [Path(os.environ[MODULES_ENV])] if os.environ.get(MODULES_ENV) else []
    return [*folders, paths.gpu_modules_dir(llama_cpp.__version__)]


def _module_kind(path: Path) -> str | None:
    """ "vulkan" for libggml-vulkan.so (or ggml-vulkan.dll); None for what is no GPU module."""
    if "ggml-" not in path.name or path.suffix not in (".so", ".dll", ".dylib"):
        return None
    kind = path.name.split("ggml-", 1)[1].split(".", 1)[0].lower()
    return kind if kind in GPU_MODULES else None


def _display_name(kind: str) -> str:
    """ggml's name of a backend module's registry: "Vulkan", "CUDA"..."""
    return {"cuda": "CUDA", "hip": "ROCm", "sycl": "SYCL", "opencl": "OpenCL"}.get(
        kind, kind.capitalize()
    )


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
        libggml = ggml()
        if is_portable_build():
            load_all = libggml.ggml_backend_load_all_from_path
            load_all.argtypes = [ctypes.c_char_p]
            load_all.restype = None
            load_all(str(library_dir()).encode())
            log.info("Loaded llama.cpp's backends from %s (portable build)", library_dir())
        load = libggml.ggml_backend_load
        load.argtypes = [ctypes.c_char_p]
        load.restype = ctypes.c_void_p
        registered = _registered_backends()
        for path in _extra_modules():
            name = _display_name(_module_kind(path) or "")
            if name.lower() in registered:
                _failed[path] = f"the installed llama.cpp has its own {name} module"
            elif load(str(path).encode()):
                log.info("Loaded the GPU module %s", path)
            else:
                _failed[path] = _loader_error(path) or "it loads, but found no usable device"
                log.info("GPU module %s not used: %s", path, _failed[path])


def _extra_modules() -> list[Path]:
    """The GPU modules in extra_module_dirs(), one per kind (the first folder wins)."""
    try:
        folders = extra_module_dirs()
    except (ImportError, OSError) as exc:
        log.info("No extra GPU modules: %s", exc)
        return []
    chosen: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*ggml-*")) if folder.is_dir() else []:
            kind = _module_kind(path)
            if kind and kind not in chosen:
                chosen[kind] = path
    return list(chosen.values())


def _loader_error(path: Path) -> str:
    """What the dynamic loader says of ``path`` ("" when it loads)."""
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:  # a library it needs is missing: the driver, most often
        return str(exc).removeprefix(f"{path}: ")
    return ""


def gpu_modules(folder: Path | None = None) -> list[GpuModule]:
    """The GPU backend modules a portable build ships, and for each whether ggml registered it
    (call after ensure_loaded) or, if not, why: what the dynamic loader said, or no device."""
    if folder is None:
        paths = sorted(library_dir().glob("*ggml-*")) + _extra_modules()
        registered = _registered_backends()
    else:
        paths, registered = sorted(folder.glob("*ggml-*")), {}
    modules = []
    for path in paths:
        kind = _module_kind(path)
        if kind is None:
            continue
        name = _display_name(kind)
        if registered.get(name.lower()) and path not in _failed:
            modules.append(GpuModule(name, path, True))
            continue
        if path in _failed:
            why = _failed[path]
        elif name.lower() in registered:  # ggml took it, and it brought no device
            why = "it loaded, but found no GPU it can use"
        else:
            why = _loader_error(path) or "it loads, but found no usable device"
        modules.append(GpuModule(name, path, False, why))
    return modules


def _registered_backends() -> dict[str, int]:
    """The backends ggml registered in this process (lower-case names), with their devices."""
    try:
        libggml = ggml()
    except (ImportError, OSError):
        return {}
    try:
        count = libggml.ggml_backend_reg_count
        get = libggml.ggml_backend_reg_get
        name = libggml.ggml_backend_reg_name
        devices = libggml.ggml_backend_reg_dev_count
    except AttributeError:
        return {}
    count.restype, count.argtypes = ctypes.c_size_t, []
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    devices.restype, devices.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
    regs = [get(i) for i in range(count())]
    return {(name(r) or b"").decode(errors="replace").lower(): devices(r) for r in regs}
