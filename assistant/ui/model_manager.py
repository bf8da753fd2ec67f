"""The one owner of the model on this machine: which is active, which is loading, which is being
deleted, the default model, and the engine process's configuration.

Everything else asks it: the chat session to use a model, the Models page to delete one (the
file is deleted only once the engine has let go of it), Settings to change the context size or
the Local API. The requests run in order on the engine thread (ui/engine_link.py).

About 400 lines: one owner on purpose. Loading, the startup model, releasing a model for
deletion and the engine's configuration all read and change the same few fields.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from assistant.errors import AssistantError, ModelError
from assistant.models import library
from assistant.models.library import LocalModel, model_reference
from assistant.records import LoadedModel
from assistant.settings import Settings
from assistant.ui.engine_link import EngineLink, engine_options
from assistant.ui.workers import resolved_path, run_task

log = logging.getLogger(__name__)


def no_model_help() -> str:
    """The empty page's words when no model is installed at all: the starter's pip command for
    a source install; for the installed app, which carries the starter, reinstalling it."""
    import sys

    start = (
        "No model is installed yet. Add a GGUF file you already have with “Add a GGUF file...” "
        "(or drop it onto this window), or browse and download one"
    )
    if getattr(sys, "frozen", False):
        return f"{start}. To get the small starter model back, reinstall Assistant."
    return (
        f"{start}, or install the small starter model with\n\n    {library.STARTER_HINT}\n\n"
        "and start Assistant again."
    )


NO_MODEL_LOADED = (
    "No model is loaded. Pick one of your installed models above, add a GGUF file with "
    "“Add a GGUF file...”, or browse and download one."
)


def failure(exc: BaseException, doing: str) -> str:
    """The sentence for a failed task: an AssistantError says it itself; anything else is
    prefixed with what was being done ("Could not list models")."""
    return str(exc) if isinstance(exc, AssistantError) else f"{doing}: {exc}"


class ModelManager(QObject):
    """Signals:
    models_changed(list): LocalModel records installed.
    model_loading(str): the file name now loading ("" while one is being found).
    model_load_progress(float): 0..1.
    model_changed(object): the LoadedModel now active (None when none).
    model_activated(object): this LoadedModel was just made active, as asked (not emitted
        when a load failed and the previous model stays).
    model_missing(str): no model is loaded and none is loading; the text says how to get one.
    model_imported(object): the LocalModel added from a file the user chose.
    model_deleted(str, int): this installed model's file is deleted; the bytes freed.
    delete_failed(str, str): this installed model could not be deleted; why.
    engine_started(str): the engine (re)started and serves at this base URL.
    settings_applied(): Settings changed (update_settings); the engine follows them.
    notice(str), error(str): a note, or a failure, to show; the app keeps running.
    """

    models_changed = Signal(list)
    model_loading = Signal(str)
    model_load_progress = Signal(float)
    model_changed = Signal(LoadedModel)  # or None
    model_activated = Signal(LoadedModel)
    model_missing = Signal(str)
    model_imported = Signal(LocalModel)
    model_deleted = Signal(str, int)
    delete_failed = Signal(str, str)
    engine_started = Signal(str)
    settings_applied = Signal()
    notice = Signal(str)
    error = Signal(str)

    def __init__(self, settings: Settings, link: EngineLink, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self._link = link
        self._models: list[LocalModel] = []  # as last listed
        self._loaded: LoadedModel | None = None
        self._loading: str | None = None  # the path asked for last ("" while finding one)
        self._loading_ctx: int | None = None  # and the context length it was asked with
        self._loaded_ctx: int | None = None  # the context length the active model was asked with
        self._pending_loads = 0  # loads asked for and not yet answered
        self._deleting: set[Path] = set()  # released for deletion; deleted once let go of
        self._closed = False
        self.engine_url: str | None = None
        worker = link.engine
        worker.engine_started.connect(self._on_engine_started)
        worker.engine_crashed.connect(self.notice)
        worker.engine_failed.connect(self.error)
        worker.load_progress.connect(self.model_load_progress)
        worker.model_loaded.connect(self._on_model_loaded)
        worker.load_failed.connect(self._on_load_failed)
        worker.reloading.connect(self._on_reloading)
        worker.model_released.connect(self._on_model_released)

    # --- state ---------------------------------------------------------------------------

    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    @property
    def is_loading(self) -> bool:
        return self._pending_loads > 0

    def uses_model(self, path: str | Path) -> bool:
        """Whether this model file is loaded, or being loaded."""
        target = resolved_path(path)
        active = [self._loading, str(self._loaded.path) if self._loaded is not None else None]
        return any(p and resolved_path(p) == target for p in active)

    def close(self) -> None:
        """Answers that arrive from now on change nothing (the app is closing)."""
        self._closed = True

    # --- the engine ----------------------------------------------------------------------

    @Slot(str)
    def _on_engine_started(self, url: str) -> None:
        self.engine_url = url
        self.engine_started.emit(url)

    def engine_access(self) -> tuple[str, str] | None:
        """The running engine's base URL and the app's own key (the Monitor scrapes with it)."""
        if not self.engine_url:
            return None
        return self.engine_url, self._link.api_key

    @property
    def local_api_url(self) -> str | None:
        """The base URL other apps use, when the Local API is on."""
        if not self.settings.local_api:
            return None
        return f"http://127.0.0.1:{int(self.settings.api_port)}/v1"

    # --- start ---------------------------------------------------------------------------

    def start(self) -> None:
        """List the installed models and, unless a load is already asked for, load the default
        (or the starter) model; the starter model may be assembled, so off the GUI thread."""
        self.refresh_models()
        if self._pending_loads or self._loaded is not None:
            return
        self._loading = ""  # finding one; the real path comes in _on_startup_model
        self._pending_loads += 1
        self.model_loading.emit("")
        run_task(
            _startup_model,
            self.settings.default_model,
            on_done=self._on_startup_model,
            on_error=self._on_startup_model_failed,
        )

    def _on_startup_model(self, result: tuple[Path | None, str | None]) -> None:
        path, problem = result
        self._load_answered()
        if problem:
            self.error.emit(problem)
        if self._closed or self._pending_loads or self._loaded is not None:
            return  # the user picked a model meanwhile
        if path is None:
            self.model_changed.emit(None)
            self.model_missing.emit(no_model_help())
            return
        self.refresh_models()
        self.load(str(path))

    def _on_startup_model_failed(self, exc: BaseException) -> None:
        self._load_answered()
        self.error.emit(failure(exc, "Could not find a model"))
        self.model_changed.emit(self._loaded)
        if self._loaded is None and not self.is_loading:
            self.model_missing.emit(no_model_help())

    # --- the installed models --------------------------------------------------------------

    @Slot()
    def refresh_models(self) -> None:
        # Off the GUI thread: every model's header is read (several MB of vocabulary each).
        run_task(
            library.installed_models,
            on_done=self._on_models_listed,
            on_error=lambda exc: self.error.emit(failure(exc, "Could not list models")),
        )

    def _on_models_listed(self, models: list[LocalModel]) -> None:
        self._models = list(models)
        self.models_changed.emit(models)

    @Slot(str)
    def import_model(self, path: str) -> None:
        """Validate and copy a GGUF file into the models folder off the GUI thread; then
        model_imported says which (the chat session uses it)."""
        self.notice.emit(f"Adding {Path(path).name}...")
        run_task(
            library.import_model,
            path,
            on_done=self._on_imported,
            on_error=lambda exc: self.error.emit(failure(exc, "Could not add the file")),
        )

    def _on_imported(self, model: LocalModel) -> None:
        self.notice.emit(f"Added {model.name}.")
        self.refresh_models()
        if not self._closed:
            self.model_imported.emit(model)

    # --- loading -------------------------------------------------------------------------

    @Slot(str)
    def load(self, path: str, n_ctx: int | None = None) -> None:
        """Load this model, replacing the active one (queued behind any reply), with ``n_ctx``
        (a chat's own context length) or the one in Settings."""
        self._loading = path
        self._loading_ctx = int(n_ctx or self.settings.n_ctx)
        self._pending_loads += 1
        self.model_loading.emit(Path(path).name)
        self._link.load(path, self.settings, self._loading_ctx)

    def use(self, path: str, n_ctx: int | None = None) -> None:
        """Make this model the active one: at once when it is loaded already (with that
        context length), else load it."""
        loaded = self._loaded
        wanted = int(n_ctx or self.settings.n_ctx)
        if loaded is not None and not self.is_loading and self._loaded_ctx == wanted:
            if resolved_path(loaded.path) == resolved_path(path):
                self._activate(loaded)
                return
        self.load(path, wanted)

    def use_reference(self, reference: str, n_ctx: int | None = None) -> None:
        """Make the model a conversation names active (with its context length), unless it is
        active or loading already."""
        try:
            path = library.find_model(reference)
        except AssistantError as exc:
            self.error.emit(f"This conversation used {reference}, which can't be found ({exc}).")
            return
        wanted = int(n_ctx or self.settings.n_ctx)
        current: str | None = self._loading
        ctx = self._loading_ctx
        if current is None:
            current = str(self._loaded.path) if self._loaded else None
            ctx = self._loaded_ctx
        if not current or resolved_path(current) != resolved_path(path) or ctx != wanted:
            self.load(str(path), wanted)

    def _load_answered(self) -> None:
        self._pending_loads = max(0, self._pending_loads - 1)
        if self._pending_loads == 0:
            self._loading = None

    @Slot(object)
    def _on_model_loaded(self, loaded: LoadedModel) -> None:
        self._loaded_ctx = self._loading_ctx or self._loaded_ctx
        self._load_answered()
        self._activate(loaded)

    @Slot(str)
    def _on_reloading(self, path: str) -> None:
        """The engine restarted and loads the model again: the same as a load we asked for."""
        self._loading = path
        self._pending_loads += 1
        self.model_loading.emit(Path(path).name)

    def _activate(self, loaded: LoadedModel) -> None:
        self._loaded = loaded
        log.info(
            "Model %s loaded in %.1f s (%s, n_ctx %d)",
            loaded.path.name,
            loaded.load_seconds,
            loaded.backend,
            loaded.n_ctx,
        )
        reference = model_reference(Path(loaded.path))
        if self.settings.default_model != reference:
            self.settings.default_model = reference
            self.save_settings()
        self.model_changed.emit(loaded)
        self.model_activated.emit(loaded)
        note = loaded.template_note
        if note:
            shown = self.settings.extra.setdefault("template_notes_shown", [])
            if isinstance(shown, list) and loaded.path.name not in shown:
                shown.append(loaded.path.name)
                self.save_settings()
                self.notice.emit(note)

    @Slot(str, str, object)
    def _on_load_failed(self, path: str, message: str, active: LoadedModel | None) -> None:
        self._load_answered()
        self.error.emit(message)
        # A file refused before loading leaves the previous model active; a crash, none.
        self._loaded = active
        self.model_changed.emit(active)
        if active is None and not self.is_loading:
            self.model_missing.emit(no_model_help() if not self._models else NO_MODEL_LOADED)

    # --- deleting ------------------------------------------------------------------------

    @Slot(str)
    def delete_model(self, path: str) -> None:
        """Delete an installed model's file. One in use is let go of first: another installed
        model takes its place (or none, and the empty state shows)."""
        target = resolved_path(path)
        if not self.uses_model(path):
            self._delete_file(target)
            return
        # Not a model on its way out too (two deletions in a row), nor one already gone.
        self._deleting = {p for p in self._deleting if p.exists()} | {target}
        others = [
            m
            for m in self._models
            if resolved_path(m.path) not in self._deleting and m.path.exists()
        ]
        fallback = str(others[0].path) if others else ""
        self._loading = fallback
        self._loading_ctx = int(self.settings.n_ctx)
        self._pending_loads += 1
        self.model_loading.emit(Path(fallback).name if fallback else "")
        self._link.release(path, fallback, self.settings)

    @Slot(str, object, str)
    def _on_model_released(self, path: str, loaded: LoadedModel | None, problem: str) -> None:
        self._load_answered()
        if problem:
            self.error.emit(problem)
        if loaded is not None:
            self._activate(loaded)
        else:
            self._loaded = None
            if self.settings.default_model == model_reference(Path(path)):
                self.settings.default_model = None
                self.save_settings()
            self.model_changed.emit(None)
            if not self.is_loading:
                self.model_missing.emit(
                    no_model_help() if len(self._models) <= 1 else NO_MODEL_LOADED
                )
        target = resolved_path(path)
        if target in self._deleting and not self._closed:
            self._deleting.discard(target)  # deleted once, however often it was asked
            self._delete_file(target)

    def _delete_file(self, path: Path) -> None:
        name = path.name
        run_task(
            library.delete_model,
            name,
            on_done=lambda freed: self._deleted(name, freed),
            on_error=lambda exc: self.delete_failed.emit(name, failure(exc, "Unexpected error")),
        )

    def _deleted(self, name: str, freed: int) -> None:
        self.model_deleted.emit(name, int(freed))
        self.refresh_models()

    # --- settings ------------------------------------------------------------------------

    def update_settings(self, new: Settings) -> None:
        """Apply edited settings (settings_applied), then follow them: a new address, key or
        thread count restarts the engine, a new context size reloads the model."""
        reload = new.n_ctx != self.settings.n_ctx
        old_options = engine_options(self.settings)
        # Slots matter only while the engine serves other apps (the app alone uses one).
        new_slots = new.local_api and new.slots != self.settings.slots
        # In place: every controller and the Models page share this object.
        for f in dataclasses.fields(new):
            setattr(self.settings, f.name, getattr(new, f.name))
        if self.settings.local_api:
            self.settings.ensure_api_key()
        self.save_settings()
        # First: a chat whose remote engine was taken out comes back here before a reload.
        self.settings_applied.emit()
        if engine_options(self.settings) != old_options or new_slots:
            self._link.reconfigure(self.settings)
        elif reload and self._loaded is not None:
            self.load(str(self._loaded.path))

    def save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as exc:
            log.warning("Could not save settings: %s", exc)


def _startup_model(default_model: str | None) -> tuple[Path | None, str | None]:
    """The model to load at start (runs on the pool: the starter model may be assembled).

    Returns the path (None when there is none at all) and a problem worth telling the user.
    """
    problem = None
    if default_model in library.FORMER_STARTERS and library.starter_available():
        default_model = None  # an earlier version's starter: today's answers better
    if default_model:
        try:
            return library.find_model(default_model), None
        except ModelError as exc:
            problem = f"Your default model {default_model} can't be used: {exc}"
    starter = library.ensure_starter_model()
    if starter is not None:
        return starter, problem
    installed = library.installed_models()
    return (installed[0].path if installed else None), problem
