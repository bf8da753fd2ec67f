"""GUI fixtures: real windows, a real database, and the fake engine (tests/fake_engine.py) over
the real protocol; tests marked ``real_engine`` run real llama.cpp with tiny GGUF models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assistant.settings import Settings
from tests.conftest import install_model
from tests.tinymodel import CHATML_TEMPLATE, write_tiny_model
from tests.ui.helpers import wait_ready


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The offscreen platform warns about window-manager features it lacks; nothing about us.
    ignore = pytest.mark.qt_log_ignore(
        "This plugin does not support propagateSizeHints", "This plugin does not support raise"
    )
    for item in items:
        if "tests/ui/" in str(item.path).replace("\\", "/"):
            item.add_marker(ignore)


@pytest.fixture(autouse=True)
def fake_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The engine the app starts: the fake one, unless the test is marked ``real_engine``.

    Yields the JSON-lines file of the chat requests the fake engine received (None when real).
    """
    if request.node.get_closest_marker("real_engine"):
        yield None
        return
    from tests.fake_engine import use_fake_engine

    log = tmp_path / "fake-engine-requests.jsonl"
    use_fake_engine(monkeypatch, log)
    yield log


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny models written once per session: two with a chat template, one without."""
    folder = tmp_path_factory.mktemp("tiny")
    return {
        "a": write_tiny_model(
            folder / "tiny-a.gguf", chat_template=CHATML_TEMPLATE, seed=1, name="Tiny A"
        ),
        "b": write_tiny_model(
            folder / "tiny-b.gguf", chat_template=CHATML_TEMPLATE, seed=2, name="Tiny B"
        ),
        "plain": write_tiny_model(folder / "tiny-plain.gguf", seed=3, name="Tiny Plain"),
    }


@pytest.fixture
def tiny_models(tiny_model_files: dict[str, Path], assistant_home: Path) -> dict[str, Path]:
    return {key: install_model(path, assistant_home) for key, path in tiny_model_files.items()}


def fast_settings(model: Path | None, **changes: object) -> Settings:
    values: dict[str, object] = dict(n_ctx=2048, max_tokens=48, temperature=0.8, n_gpu_layers=0)
    values["default_model"] = model.name if model else None
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def make_window(qtbot, assistant_home: Path) -> Iterator[Callable[..., object]]:
    """Build a MainWindow over a real Store; at the end close it and fail if a thread lives on."""
    from assistant.conversations.storage import Store
    from assistant.ui.controllers import Controllers
    from assistant.ui.main_window import MainWindow
    from assistant.ui.workers import pending_tasks, wait_for_tasks

    windows: list[MainWindow] = []

    def make(
        settings: Settings | None = None, *, start: bool = True, wait_model: bool = True
    ) -> MainWindow:
        settings = settings or Settings()
        settings.save()
        app = Controllers(Store(), settings)
        window = MainWindow(app)
        windows.append(window)
        window.show()
        if start:
            app.start()
            if wait_model:
                wait_ready(qtbot, window)
        return window

    yield make

    for window in windows:
        window.close()
        thread = window.controllers.engine_thread
        assert not thread.isRunning(), "the inference thread is still running after close"
        window.deleteLater()
    assert wait_for_tasks(10_000), "a pool task is still running"
    qtbot.waitUntil(lambda: pending_tasks() == 0, timeout=5000)
