"""What a bare desktop lacks for the window, read from real ELF files by the real dynamic loader:
shared objects built here with gcc whose dependencies are then taken away."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from assistant.ui import system_libraries
from assistant.ui.system_libraries import desktop_problem, explain, missing_libraries
from tests.elf import shared_object

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF and ldd: Linux"),
    pytest.mark.skipif(
        shutil.which("gcc") is None or shutil.which("ldd") is None, reason="needs gcc and ldd"
    ),  # fmt: skip
]


def fake_pyside(
    tmp_path: Path, gui_needs: list[str], xcb_needs: list[str], wayland_needs: list[str] = ()
) -> Path:
    folder = tmp_path / "PySide6"
    plugins = folder / "Qt" / "plugins" / "platforms"
    plugins.mkdir(parents=True)
    shared_object(folder, "QtGui.abi3.so", gui_needs)
    shared_object(plugins, "libqxcb.so", xcb_needs)
    shared_object(plugins, "libqwayland.so", list(wayland_needs))
    return folder


# Sonames no machine has: the libraries a desktop lacks are played by these.
GHOST = "libassistant-ghost.so.7"
OTHER_GHOST = "libassistant-other-ghost.so.1"


def test_missing_libraries_are_read_from_the_binary(tmp_path: Path) -> None:
    so = shared_object(tmp_path, "libneedy.so", [OTHER_GHOST, GHOST])
    assert missing_libraries(so) == [GHOST, OTHER_GHOST]
    assert missing_libraries(shared_object(tmp_path, "libfine.so", [])) == []


def test_the_commands_that_install_what_the_xcb_plugin_lacks() -> None:
    text = explain(["libxcb-cursor.so.0", "libxcb-icccm.so.4"], "Qt's xcb platform plugin")
    assert "Qt's xcb platform plugin" in text
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4" in text
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4" in text
    assert "sudo dnf install xcb-util-cursor xcb-util-wm" in text
    unknown = explain(["libnowhere.so.9"], "Qt")
    assert "libnowhere.so.9" in unknown and "apt install" not in unknown


def test_the_platform_plugin_s_missing_libraries_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = fake_pyside(tmp_path, [], [GHOST])
    monkeypatch.setattr(system_libraries, "qt_folder", lambda: folder)
    monkeypatch.setitem(system_libraries.PACKAGES, GHOST, ("libghost7", "ghost-libs"))
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    problem = desktop_problem() or ""
    assert "Qt's xcb platform plugin" in problem and GHOST in problem
    assert "sudo apt install libghost7" in problem and "sudo dnf install ghost-libs" in problem
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # needs no display libraries
    assert desktop_problem() is None


def test_qt_itself_is_checked_before_its_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = fake_pyside(tmp_path, [OTHER_GHOST], [GHOST])
    monkeypatch.setattr(system_libraries, "qt_folder", lambda: folder)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    problem = desktop_problem() or ""
    assert problem.startswith("The window cannot open: Qt needs system libraries")
    assert OTHER_GHOST in problem and GHOST not in problem


def test_the_app_and_the_self_test_say_it_instead_of_crashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import assistant.__main__ as entry
    from assistant import files
    from assistant.errors import AssistantError

    monkeypatch.setattr(files, "make_private_by_default", lambda: None)  # no umask for the rest

    folder = fake_pyside(tmp_path, [], [GHOST])
    monkeypatch.setattr(system_libraries, "qt_folder", lambda: folder)
    monkeypatch.setitem(system_libraries.PACKAGES, GHOST, ("libghost7", "ghost-libs"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert entry.main([]) == 1
    assert "sudo apt install libghost7" in capsys.readouterr().err
    with pytest.raises(AssistantError, match="libghost7"):
        entry._check_gui()


def test_this_machine_s_qt_is_found_and_complete_offscreen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert system_libraries.qt_folder() is not None
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert desktop_problem() is None


def test_qt_tries_its_plugins_in_turn_and_so_does_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Wayland session: Qt tries wayland, then xcb; the window opens if either can load."""
    folder = fake_pyside(tmp_path, [], xcb_needs=[GHOST], wayland_needs=[OTHER_GHOST])
    monkeypatch.setattr(system_libraries, "qt_folder", lambda: folder)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    assert system_libraries.platform_candidates() == ["wayland", "xcb"]
    problem = desktop_problem() or ""  # both lack something: the first is named
    assert "Qt's wayland platform plugin" in problem and OTHER_GHOST in problem
    monkeypatch.setenv("QT_QPA_PLATFORM", "wayland;offscreen")
    assert desktop_problem() is None  # offscreen needs no display libraries
    monkeypatch.setenv("QT_QPA_PLATFORM", "wayland;xcb")
    assert desktop_problem() is not None
    monkeypatch.setenv(system_libraries.SKIP_ENV, "1")
    assert desktop_problem() is None  # the person's word: let Qt try


def test_one_plugin_that_loads_is_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = fake_pyside(tmp_path, [], xcb_needs=[GHOST], wayland_needs=[])
    monkeypatch.setattr(system_libraries, "qt_folder", lambda: folder)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert desktop_problem() is None
