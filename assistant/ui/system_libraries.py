"""Whether this desktop can show the app's window, asked before Qt is: the system libraries that
Qt's platform plugin (or Qt itself) needs and this machine lacks, read from the plugin with the
dynamic loader (``ldd``), and the command that installs them on Debian, Ubuntu and Fedora.

Without this, a bare desktop gets Qt's own "Could not load the Qt platform plugin "xcb"" and an
abort (Qt ends the process; nothing can catch it), or a Python traceback when libGL is missing.
No Qt is imported here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# soname -> (Debian and Ubuntu package, Fedora package). The names come from each
# distribution's package index (Debian 12, Ubuntu 24.04, Fedora 41).
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl"),
    "libbrotlicommon.so.1": ("libbrotli1", "libbrotli"),
    "libbrotlidec.so.1": ("libbrotli1", "libbrotli"),
    "libgssapi_krb5.so.2": ("libgssapi-krb5-2", "krb5-libs"),
}


def qt_folder() -> Path | None:
    """PySide6's own folder (its modules and Qt), found without importing it."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


NO_DISPLAY_PLUGINS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb", "cocoa", "windows")
SKIP_ENV = "ASSISTANT_SKIP_QT_CHECK"  # set to 1 to start Qt whatever this check finds


def platform_candidates() -> list[str]:
    """The platform plugins Qt will try, in its order: QT_QPA_PLATFORM's list, else Wayland
    then X11 in a Wayland session, else X11."""
    wanted = os.environ.get("QT_QPA_PLATFORM", "")
    if wanted.strip():
        return [p.split(":")[0].strip() for p in wanted.split(";") if p.strip()]
    wayland = os.environ.get("WAYLAND_DISPLAY") or os.environ.get("XDG_SESSION_TYPE") == "wayland"
    return ["wayland", "xcb"] if wayland else ["xcb"]


def platform_plugin(folder: Path, name: str) -> Path | None:
    """The file of platform plugin ``name`` in this Qt (None if it has none)."""
    plugins = folder / "Qt" / "plugins" / "platforms"
    plugin = plugins / f"libq{name}.so"
    if name == "wayland" and not plugin.exists():  # older Qt: one plugin per shell
        plugin = plugins / "libqwayland-generic.so"
    return plugin if plugin.exists() else None


def missing_libraries(binary: Path) -> list[str]:
    """The shared libraries ``binary`` needs, directly or through others, that the dynamic
    loader cannot find here (``ldd``'s "not found"); [] when ldd is not there to ask."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        out = subprocess.run(
            [ldd, str(binary)], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = re.findall(r"^\s*(\S+) => not found", out, re.MULTILINE)
    return sorted(set(found))


def explain(missing: list[str], what: str) -> str:
    """One paragraph: what cannot load, what is missing, and the commands that install it."""
    debian = sorted({PACKAGES[lib][0] for lib in missing if lib in PACKAGES})
    fedora = sorted({PACKAGES[lib][1] for lib in missing if lib in PACKAGES})
    unknown = [lib for lib in missing if lib not in PACKAGES]
    text = (
        f"The window cannot open: {what} needs system libraries this computer lacks: "
        f"{', '.join(missing)}."
    )
    if debian:
        text += (
            f" Install them on Debian or Ubuntu with `sudo apt install {' '.join(debian)}`, "
            f"on Fedora with `sudo dnf install {' '.join(fedora)}`."
        )
    if unknown:
        text += f" Your distribution's package search finds {', '.join(unknown)}."
    return text


def desktop_problem() -> str | None:
    """Why Qt could not show a window on this desktop, in words, or None if it can, or if
    nothing missing can be seen before trying (Linux only; elsewhere Qt ships what it needs).
    Qt tries its platform plugins in turn, so this refuses only when every one of them lacks
    something; ASSISTANT_SKIP_QT_CHECK=1 leaves it all to Qt."""
    if not sys.platform.startswith("linux") or os.environ.get(SKIP_ENV) == "1":
        return None
    folder = qt_folder()
    if folder is None:
        return "The window cannot open: PySide6 (Qt) is not installed."
    # Qt's own libraries first (libGL, fontconfig...), then its platform plugins' (xcb...).
    gui = next(iter(sorted(folder.glob("QtGui*.so"))), None)
    if gui is not None and (missing := missing_libraries(gui)):
        return explain(missing, "Qt")
    problems = []
    for name in platform_candidates():
        if name in NO_DISPLAY_PLUGINS:
            return None
        plugin = platform_plugin(folder, name)
        if plugin is None:
            continue  # Qt says so itself, and tries the next one
        missing = missing_libraries(plugin)
        if not missing:
            return None
        problems.append(explain(missing, f"Qt's {name} platform plugin"))
    return problems[0] if problems else None
