"""The GUI's controllers, composed over one Store and one Settings: who owns what.

- ``ModelManager`` (ui/model_manager.py): the model on this machine (active, loading, being
  deleted), the default model and the engine process's configuration.
- ``ChatSession`` (ui/session.py): the open chat and its turns, with its model here or on a
  remote engine (ui/model_choice.py), its own settings (ui/chat_options.py) and the streaming
  reply (ui/reply_stream.py).
- ``ConversationsController`` (ui/conversations.py): the list, search, rename, delete, export.
- ``EngineLink`` (ui/engine_link.py): the threads that talk to the engines.
- ``DocumentsController`` (ui/documents_controller.py): the person's document collections and
  their background indexing.
- ``FirstRun`` (ui/first_run.py): the model suggested for this machine while the starter is all
  there is.

The Store's SQLite connection belongs to the GUI thread; the workers get data, never the Store.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QThread

from assistant.conversations.storage import Store
from assistant.settings import Settings
from assistant.ui.conversations import ConversationsController
from assistant.ui.documents_controller import DocumentsController
from assistant.ui.engine_link import EngineLink
from assistant.ui.first_run import FirstRun
from assistant.ui.model_manager import ModelManager
from assistant.ui.remote_engines import RemoteEngines
from assistant.ui.session import ChatSession
from assistant.ui.workers import wait_for_tasks

log = logging.getLogger(__name__)


class Controllers(QObject):
    """Builds the controllers, starts the engine, and shuts everything down in order.

    The controllers are its Qt children, and the window that shows them takes it as its own
    child: so they are destroyed with the window, on the GUI thread, and never by Python's
    garbage collector on whatever thread it happens to run (Qt warns, and timers break).
    """

    def __init__(self, store: Store, settings: Settings | None = None):
        super().__init__()
        self.store = store
        self.settings = settings if settings is not None else Settings.load()
        self.link = EngineLink(self.settings, self)
        self.remote_engines = RemoteEngines(self.settings, self)
        self.models = ModelManager(self.settings, self.link, self)
        self.session = ChatSession(
            store, self.settings, self.models, self.link, self.remote_engines, self
        )
        self.conversations = ConversationsController(store, self.session, self)
        self.first_run = FirstRun(self.settings, self)
        self.documents = DocumentsController(self.models.engine_access, self)
        # Indexing needs the engine: it starts (or goes on from a closed app's run) with it.
        self.models.engine_started.connect(self.documents.resume)
        self.models.models_changed.connect(self.first_run.on_models_changed)
        self._closed = False
        self.link.start()  # the engine process starts while the window opens

    @property
    def engine_thread(self) -> QThread:
        return self.link.engine_thread

    def start(self) -> None:
        """Show the conversations, open the latest, and load the default (or starter) model."""
        self.conversations.refresh()
        self.documents.refresh()
        self.session.open_latest()  # may ask for the model that conversation used
        self.models.start()
        self.remote_engines.refresh()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Stop any reply (keeping what it wrote), close the engine and end the threads, each
        wait bounded; then close the database. Returns whether the engine thread ended in time.
        Safe to call more than once."""
        if self._closed:
            return not self.link.engine_thread.isRunning()
        self._closed = True
        self.documents.stop()
        self.models.close()
        self.session.shutdown()
        finished = self.link.shutdown(timeout_ms)
        wait_for_tasks(2000)
        try:
            self.store.close()
        except Exception:
            log.exception("Closing the database failed")
        return finished
