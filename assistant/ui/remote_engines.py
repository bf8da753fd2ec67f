"""The remote engines the app may use, and what each said when last asked (off the GUI thread).

Probed at start, when Settings change, every minute, and after a reply failed to reach one, so
that an engine that went away shows as unavailable in the model picker (and one that came back,
as available again) without the app waiting on the network.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from assistant.clients import remote
from assistant.clients.openai_client import probe_all
from assistant.clients.remote import EngineStatus
from assistant.endpoints import RemoteEngine
from assistant.settings import Settings
from assistant.ui.workers import run_task

log = logging.getLogger(__name__)

REFRESH_INTERVAL_MS = 60_000


class RemoteEngines(QObject):
    """Signals:
    changed(list): an EngineStatus for each engine the app may use, in Settings' order (none
        while "local only" is on).
    """

    changed = Signal(list)

    def __init__(self, settings: Settings, parent: QObject | None = None):
        super().__init__(parent)
        self._settings = settings
        self._statuses: list[EngineStatus] = []
        self._probing = False
        self._again = False
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()

    @property
    def statuses(self) -> list[EngineStatus]:
        return list(self._statuses)

    def engine(self, name: str) -> RemoteEngine | None:
        """The engine of that name the app may use now (with the kind its probe found)."""
        return remote.engine_named(remote.visible_engines(self._settings), name)

    @Slot()
    def refresh(self) -> None:
        engines = remote.visible_engines(self._settings)
        if not engines:
            self._statuses = []
            self.changed.emit([])
            return
        if self._probing:
            self._again = True  # the settings may have changed meanwhile: ask once more
            return
        self._probing = True
        # Shown at once as last known, so that an added engine appears while it is probed.
        known = {s.name: s for s in self._statuses}
        self._statuses = [
            known.get(e.name) or EngineStatus(e, problem="Connecting...") for e in engines
        ]
        self.changed.emit(self.statuses)
        run_task(probe_all, engines, on_done=self._on_probed, on_error=self._on_probe_failed)

    def _on_probed(self, statuses: list[EngineStatus | None]) -> None:
        self._probing = False
        # None: busy writing our reply, so not asked; it stays as last known.
        known = {s.name: s for s in self._statuses}
        answered = {s.name: s for s in statuses if s is not None}
        self._statuses = [
            answered.get(e.name) or known.get(e.name) or EngineStatus(e)
            for e in remote.visible_engines(self._settings)
        ]
        learnt = False
        for status in self._statuses:
            saved = next((e for e in self._settings.engines if e.name == status.name), None)
            if saved is not None and status.engine.kind and saved.kind != status.engine.kind:
                remote.with_kind(self._settings, status.name, status.engine.kind)
                learnt = True
        if learnt:
            try:
                self._settings.save()
            except OSError as exc:
                log.warning("Could not save settings: %s", exc)
        self.changed.emit(self.statuses)
        if self._again:
            self._again = False
            self.refresh()

    def _on_probe_failed(self, exc: BaseException) -> None:
        self._probing = False
        log.warning("Probing the remote engines failed: %s", exc)
        if self._again:
            self._again = False
            self.refresh()
