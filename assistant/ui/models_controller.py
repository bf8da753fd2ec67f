"""The GUI-thread side of the Models page: search, repo views, fit estimates, the download queue.

Views talk only to ``ModelsController``. Hub calls and fit estimates run on the task pool
(``run_task``); downloads run on ``DownloadQueue``'s own worker thread, whose ``on_change``
callback is forwarded here through a queued signal, so job updates reach the views on the GUI
thread, in order, as immutable ``JobView`` snapshots. The plain functions it runs live in the
models wing: ``assistant.models.fit_report`` (fit estimates) and ``assistant.models.partials``
(partial downloads from earlier runs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal, Slot

from assistant import paths
from assistant.errors import AssistantError, GatedRepoError
from assistant.models import downloads, hub, library
from assistant.models.download_queue import DownloadJob, DownloadQueue, JobState
from assistant.models.fit_report import FitReport, estimate_catalog, estimate_repo
from assistant.models.hub import ModelVariant, RepoView
from assistant.models.partials import PendingVariant, discard_variant, pending_variants
from assistant.settings import Settings
from assistant.ui.workers import run_task

if TYPE_CHECKING:
    from assistant.hardware.machine import Hardware
    from assistant.models.catalog import CatalogEntry
    from assistant.ui.model_manager import ModelManager

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Records handed to the views (immutable: they cross from worker threads)


@dataclass(frozen=True)
class JobView:
    """A snapshot of one DownloadJob, taken on the thread that changed it."""

    id: int
    variant: ModelVariant
    state: str  # queued | downloading | paused | done | failed | cancelled
    progress: downloads.Progress | None
    path: Path | None
    error: str | None
    gated: bool  # failed because the repo needs a token (or a better one)


def _is_gated(job: DownloadJob) -> bool:
    return isinstance(job.exception, GatedRepoError)


# ---------------------------------------------------------------------------------------------


class ModelsController(QObject):
    """Everything the Models page does; lives on the GUI thread, outlives the dialog.

    Signals:
        search_started(str) / search_finished(str, list) / search_failed(str, str):
            query, then [hub.RepoSummary] or the sentence to show.
        repo_opening(str) / repo_opened(object) / repo_failed(str, str): a hub.RepoView.
        fits_estimated(object): a FitReport (for a searched repo or a catalog entry).
        job_changed(object): a JobView, whenever a download's state or progress changes.
        pending_listed(list): [PendingVariant] partial downloads from earlier runs.
        installed_listed(list): [library.LocalModel].
        model_deleted(str, int): file name and bytes freed.
        delete_failed(str, str): file name and the sentence to show.
        model_installed(str): a download finished; the path of the file to load.
        models_changed(): the installed models changed (download finished, model deleted).
        use_model_requested(str): the user asked to chat with the model at this path.
        token_saved(): a Hugging Face token was saved (gated downloads are retried).
        error(str): a failure not tied to one view.
    """

    search_started = Signal(str)
    search_finished = Signal(str, list)
    search_failed = Signal(str, str)
    repo_opening = Signal(str)
    repo_opened = Signal(RepoView)
    repo_failed = Signal(str, str)
    fits_estimated = Signal(FitReport)
    job_changed = Signal(JobView)
    pending_listed = Signal(list)
    installed_listed = Signal(list)
    model_deleted = Signal(str, int)
    delete_failed = Signal(str, str)
    model_installed = Signal(str)
    models_changed = Signal()
    use_model_requested = Signal(str)
    token_saved = Signal()
    error = Signal(str)

    # Emitted from the download thread; queued to _on_job_event on the GUI thread.
    _job_event = Signal(JobView)

    def __init__(self, settings: Settings | None = None, parent: QObject | None = None):
        super().__init__(parent)
        # Share the app's Settings object when given: it saves the whole dataclass,
        # and a separate copy would overwrite the token saved here.
        self.settings = settings if settings is not None else Settings.load()
        self._queue: DownloadQueue | None = None
        self._jobs: dict[int, DownloadJob] = {}
        self._views: dict[int, JobView] = {}
        self._hardware: Hardware | None = None
        self._search_seq = 0
        self._repo_seq = 0
        self._closed = False
        # The app's ModelManager, when this page is part of the app (see attach_models).
        self._models: ModelManager | None = None
        self._job_event.connect(self._on_job_event, Qt.ConnectionType.QueuedConnection)

    # --- state the views may read --------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return int(self.settings.n_ctx)

    @property
    def hardware(self) -> Hardware | None:
        return self._hardware

    def jobs(self) -> list[JobView]:
        return list(self._views.values())

    def job(self, job_id: int) -> JobView | None:
        return self._views.get(job_id)

    def has_token(self) -> bool:
        return hub.token() is not None

    # --- search and repos ----------------------------------------------------------------

    @Slot(str, str)
    def search(self, query: str, sort: str = "downloads") -> None:
        self._search_seq += 1
        seq = self._search_seq
        self.search_started.emit(query)
        run_task(
            hub.search,
            query,
            sort=sort,
            limit=50,
            on_done=lambda r: self._searched(seq, query, r),
            on_error=lambda e: self._search_error(seq, query, e),
        )

    def _searched(self, seq: int, query: str, results: list) -> None:
        if seq == self._search_seq and not self._closed:  # a newer search supersedes this one
            self.search_finished.emit(query, results)

    def _search_error(self, seq: int, query: str, exc: BaseException) -> None:
        if seq == self._search_seq and not self._closed:
            self.search_failed.emit(query, _message(exc))

    @Slot(str)
    def open_repo(self, repo: str) -> None:
        """List the repo's GGUF variants, then estimate their fit (both off the GUI thread)."""
        self._repo_seq += 1
        seq = self._repo_seq
        self.repo_opening.emit(repo)
        run_task(
            hub.repo_view,
            repo,
            on_done=lambda v: self._repo_done(seq, v),
            on_error=lambda e: self._repo_error(seq, repo, e),
        )

    def _repo_done(self, seq: int, view: RepoView) -> None:
        if seq != self._repo_seq or self._closed:
            return
        self.repo_opened.emit(view)
        if view.variants:
            run_task(
                estimate_repo,
                view,
                self.n_ctx,
                self._hardware,
                on_done=self._fits_done,
                on_error=lambda e: self._fits_error(view.repo, e),
            )

    def _repo_error(self, seq: int, repo: str, exc: BaseException) -> None:
        if seq == self._repo_seq and not self._closed:
            self.repo_failed.emit(repo, _message(exc))

    def estimate_catalog(self, entry: CatalogEntry) -> None:
        run_task(
            estimate_catalog,
            entry,
            self.n_ctx,
            self._hardware,
            on_done=self._fits_done,
            on_error=lambda e: self._fits_error(entry.repo, e),
        )

    def _fits_done(self, report: FitReport) -> None:
        if self._closed:
            return
        if report.hardware is not None:
            self._hardware = report.hardware
        self.fits_estimated.emit(report)

    def _fits_error(self, repo: str, exc: BaseException) -> None:
        if not self._closed:
            self.fits_estimated.emit(FitReport(repo, n_ctx=self.n_ctx, error=_message(exc)))

    # --- token ---------------------------------------------------------------------------

    @Slot(str)
    def save_token(self, token: str) -> None:
        """Save (or, when empty, forget) the Hugging Face token, then retry gated downloads."""
        token = token.strip()
        self.settings.hf_token = token or None
        try:
            self.settings.save()
        except OSError as exc:
            self.error.emit(f"Could not save the token: {exc.strerror or exc}")
            return
        self.token_saved.emit()
        if token:
            for view in list(self._views.values()):
                if view.state == JobState.FAILED and view.gated:
                    self.resume(view.id)

    # --- downloads -----------------------------------------------------------------------

    def _ensure_queue(self) -> DownloadQueue:
        if self._queue is None:
            self._queue = DownloadQueue(on_change=self._forward)
        return self._queue

    def _forward(self, job: DownloadJob) -> None:
        """Called on whichever thread changed the job: snapshot it there, hand it over queued.

        The queue calls this under its lock, so snapshots are posted in the order the changes
        happened and the last one always shows the job's final state.
        """
        if self._closed:
            return
        gated = job.state == JobState.FAILED and _is_gated(job)
        view = JobView(job.id, job.variant, job.state, job.progress, job.path, job.error, gated)
        self._job_event.emit(view)

    @Slot(object)
    def download(self, variant: ModelVariant) -> int:
        """Queue a download; returns its job id."""
        job = self._ensure_queue().add(variant)
        self._jobs[job.id] = job
        return job.id

    @Slot(int)
    def pause(self, job_id: int) -> None:
        if self._queue is not None and job_id in self._jobs:
            self._queue.pause(self._jobs[job_id])

    @Slot(int)
    def resume(self, job_id: int) -> None:
        if self._queue is not None and job_id in self._jobs:
            self._queue.resume(self._jobs[job_id])

    @Slot(int)
    def cancel(self, job_id: int) -> None:
        """Stop the download and delete its partial files."""
        if self._queue is not None and job_id in self._jobs:
            self._queue.cancel(self._jobs[job_id])

    @Slot(object)
    def _on_job_event(self, view: JobView) -> None:
        if self._closed:
            return
        previous = self._views.get(view.id)
        self._views[view.id] = view
        self.job_changed.emit(view)
        if (
            view.state == JobState.DONE
            and (previous is None or previous.state != JobState.DONE)
            and view.path
        ):
            self.model_installed.emit(str(view.path))
            self.models_changed.emit()
            self.refresh_installed()

    def refresh_pending(self) -> None:
        run_task(pending_variants, on_done=self._pending_done, on_error=self._report_error)

    def _pending_done(self, found: list[PendingVariant]) -> None:
        if self._closed:
            return
        active = {
            f.filename
            for j in self._jobs.values()
            if j.state != JobState.CANCELLED
            for f in j.variant.files
        }
        self.pending_listed.emit([p for p in found if p.variant.filename not in active])

    def resume_pending(self, pending: PendingVariant) -> int:
        return self.download(pending.variant)

    def discard_pending(self, pending: PendingVariant) -> None:
        run_task(
            discard_variant,
            pending.variant,
            on_done=lambda _: self.refresh_pending(),
            on_error=self._report_error,
        )

    # --- installed -----------------------------------------------------------------------

    @Slot()
    def refresh_installed(self) -> None:
        run_task(
            library.installed_models, on_done=self._installed_done, on_error=self._report_error
        )

    def _installed_done(self, models: list) -> None:
        if not self._closed:
            self.installed_listed.emit(models)

    def attach_models(self, models: ModelManager) -> None:
        """Delete through the app's ModelManager: it lets go of a model in use first."""
        self._models = models
        models.model_deleted.connect(self._deleted)
        models.delete_failed.connect(self._delete_failed)

    def is_in_use(self, name: str) -> bool:
        """Whether the installed model with this file name is loaded (or loading) for chats."""
        return self._models is not None and self._models.uses_model(paths.models_dir() / name)

    @Slot(str)
    def delete_model(self, name: str) -> None:
        """Delete an installed model; the chat switches away from it first if it uses it."""
        if self._models is not None:
            self._models.delete_model(str(paths.models_dir() / name))
            return
        self._delete_now(name)

    def _delete_now(self, name: str) -> None:
        run_task(
            library.delete_model,
            name,
            on_done=lambda freed: self._deleted(name, freed),
            on_error=lambda exc: self._delete_failed(name, _message(exc)),
        )

    @Slot(str, str)
    def _delete_failed(self, name: str, message: str) -> None:
        if not self._closed:
            self.delete_failed.emit(name, message)
            self.refresh_installed()

    @Slot(str, int)
    def _deleted(self, name: str, freed: int) -> None:
        if self._closed:
            return
        self.model_deleted.emit(name, int(freed))
        self.models_changed.emit()
        self.refresh_installed()

    @Slot(str)
    def use_model(self, path: str) -> None:
        self.use_model_requested.emit(path)

    def _report_error(self, exc: BaseException) -> None:
        if not self._closed:
            self.error.emit(_message(exc))

    # --- shutdown ------------------------------------------------------------------------

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Pause any running download (its partial is kept for next time) and stop the worker."""
        self._closed = True
        if self._queue is not None:
            self._queue.close(timeout_s)
            self._queue = None


def _message(exc: BaseException) -> str:
    if isinstance(exc, AssistantError):
        return str(exc)
    return f"Unexpected error: {exc}"
