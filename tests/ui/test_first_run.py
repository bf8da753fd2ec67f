"""A first run with nothing but the starter: one catalog model suggested for this machine, with
its size and expected speed, one click from its download; "Not now" is remembered."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.models import library
from assistant.models.recommend import Recommendation
from assistant.settings import Settings
from assistant.ui.first_run import DISMISSED
from assistant.ui.models_controller import ModelsController
from tests.ui.conftest import fast_settings

TIMEOUT = 20_000
GiB = 1 << 30


@pytest.fixture(autouse=True)
def a_16_gib_cpu_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same machine wherever the tests run: 16 GiB, no GPU, 40 GB/s."""
    from assistant.hardware.machine import Hardware
    from assistant.models import catalog, recommend
    from assistant.ui import first_run

    box = Hardware(16 * GiB, 16 * GiB, False, "CPU", (), "CPU only")
    monkeypatch.setattr(
        first_run,
        "_recommend",
        lambda n_ctx: recommend.recommend(catalog.entries(), box, n_ctx, cpu_bandwidth=40e9),
    )


def starter_only(tiny_models: dict[str, Path]) -> Path:
    """The starter as the one installed model (a tiny GGUF under the starter's name)."""
    models = tiny_models["a"].parent
    for path in models.glob("*.gguf"):
        if path != tiny_models["a"]:
            path.unlink()
    return tiny_models["a"].rename(models / library.STARTER_FILE)


def test_the_starter_alone_brings_a_suggestion_one_click_from_its_download(
    qtbot, make_window, tiny_models, monkeypatch
) -> None:
    starter = starter_only(tiny_models)
    asked: list[str] = []
    monkeypatch.setattr(
        ModelsController, "download", lambda self, variant: asked.append(variant.repo) or 1
    )
    window = make_window(fast_settings(starter))
    card = window.recommendation
    qtbot.waitUntil(card.isVisible, timeout=TIMEOUT)
    shown: Recommendation = card.recommendation
    assert shown.entry.name in card.title.text()
    text = card.label.text()
    assert "download" in text and "tokens/s" in text and shown.variant.quantization in text
    assert shown.entry.license in text

    card.download_button.click()
    dialog = window.dialogs.models_dialog
    assert dialog is not None and dialog.isVisible()
    assert asked == [shown.entry.repo]
    assert dialog.tabs.currentWidget() is dialog.downloads_tab
    assert not card.download_button.isEnabled()
    # The download fails (the Models page says why): Download is offered again.
    from assistant.ui.models_controller import JobView

    dialog.controller.job_changed.emit(JobView(1, shown.variant, "failed", None, None, "x", False))
    assert card.download_button.isEnabled() and card.download_button.text() == "Download"


def test_not_now_is_remembered(qtbot, make_window, tiny_models) -> None:
    starter = starter_only(tiny_models)
    window = make_window(fast_settings(starter))
    card = window.recommendation
    qtbot.waitUntil(card.isVisible, timeout=TIMEOUT)
    card.not_now_button.click()
    assert not card.isVisible()
    assert Settings.load().extra.get(DISMISSED) is True


def test_no_suggestion_once_a_model_of_the_person_s_own_is_installed(
    qtbot, make_window, tiny_models
) -> None:
    window = make_window(fast_settings(tiny_models["a"]))
    qtbot.waitUntil(lambda: window.models.loaded is not None, timeout=TIMEOUT)
    qtbot.wait(300)
    assert not window.recommendation.isVisible()
    assert window.controllers.first_run.current is None


def test_a_model_installed_while_the_suggestion_is_worked_out_wins(qtbot, tiny_models) -> None:
    from assistant.models.library import LocalModel
    from assistant.ui.first_run import FirstRun
    from assistant.ui.workers import wait_for_tasks

    def model(name: str) -> LocalModel:
        return LocalModel(Path(name), name, 1, "Q4_K_M", "llama", library.is_starter(name))

    first_run = FirstRun(Settings())
    shown: list[object] = []
    first_run.recommended.connect(shown.append)
    first_run.on_models_changed([model(library.STARTER_FILE)])
    first_run.on_models_changed([model(library.STARTER_FILE), model("mine.gguf")])
    assert wait_for_tasks(TIMEOUT)
    qtbot.wait(100)  # the task's result reaches the GUI thread
    assert shown == [] and first_run.current is None
