"""The first run's suggestion: while the starter is the only model installed, one catalog model
chosen for this machine (assistant/models/recommend.py), worked out off the GUI thread.

Signals:
    recommended(object): a Recommendation to show, or None to hide it (a model was installed,
        or the person said "Not now", which is remembered).
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal, Slot

from assistant.models.library import LocalModel
from assistant.models.recommend import Recommendation
from assistant.settings import Settings
from assistant.ui.workers import run_task

log = logging.getLogger(__name__)

DISMISSED = "first_run_recommendation_dismissed"  # in Settings.extra


class FirstRun(QObject):
    recommended = Signal(object)  # Recommendation or None

    def __init__(self, settings: Settings, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self.current: Recommendation | None = None
        self._asking = False
        self._starter_only = False  # as the last list of installed models said

    @Slot(list)
    def on_models_changed(self, models: list[LocalModel]) -> None:
        starter_only = bool(models) and all(m.is_starter for m in models)
        self._starter_only = starter_only
        if not starter_only or self.settings.extra.get(DISMISSED):
            self._show(None)
            return
        if self.current is None and not self._asking:
            self._asking = True
            n_ctx = self.settings.n_ctx or 4096  # 0, "the model's own", would mean 40k-262k
            run_task(_recommend, n_ctx, on_done=self._done, on_error=self._failed)

    def dismiss(self) -> None:
        """ "Not now": hidden, and not offered again."""
        self.settings.extra[DISMISSED] = True
        try:
            self.settings.save()
        except OSError as exc:  # hidden now all the same; offered again next time
            log.warning("Could not save the settings: %s", exc)
        self._show(None)

    def _done(self, recommendation: Recommendation | None) -> None:
        self._asking = False
        # A model installed while this was worked out: the suggestion is moot.
        if self._starter_only and not self.settings.extra.get(DISMISSED):
            self._show(recommendation)

    def _failed(self, exc: BaseException) -> None:
        self._asking = False
        log.warning("No recommendation for this machine: %s", exc)

    def _show(self, recommendation: Recommendation | None) -> None:
        if recommendation is not self.current:
            self.current = recommendation
            self.recommended.emit(recommendation)


def _recommend(n_ctx: int) -> Recommendation | None:
    """On the pool: this machine's memory and GPUs, the shipped catalog, the suggestion."""
    from assistant.hardware import machine
    from assistant.models import catalog, recommend

    return recommend.recommend(catalog.entries(), machine.detect_in_child(), n_ctx)
