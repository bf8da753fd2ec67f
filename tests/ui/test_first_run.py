"""A first run with nothing but the starter: one catalog model suggested for this machine, with
its size and expected speed, one click from its download; "Not now" is remembered."""

from __future__ import annotations

from pathlib import Path

from assistant.models import library
from assistant.models.recommend import Recommendation
from assistant.settings import Settings
from assistant.ui.first_run import DISMISSED
from assistant.ui.models_controller import ModelsController
from tests.ui.conftest import fast_settings

TIMEOUT = 20_000


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
