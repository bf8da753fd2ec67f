"""A queue of downloads for the GUI: one at a time on a worker thread, paused, resumed and
cancelled from any thread. Plain threads, no Qt: ``on_change(job)`` is called from the worker,
and the GUI forwards it with a queued signal. The transfer itself is downloads.py's.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AssistantError, DownloadCancelled
from assistant.models import downloads
from assistant.models.downloads import Progress
from assistant.models.hub import ModelVariant

log = logging.getLogger(__name__)


class JobState(enum.StrEnum):
    """A queued download's state."""

    QUEUED = "queued"
    DOWNLOADING = "downloading"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class DownloadJob:
    id: int
    variant: ModelVariant
    state: JobState = JobState.QUEUED
    progress: Progress | None = None
    path: Path | None = None
    error: str | None = None
    # The failure itself, so callers can tell a gated repo or a full disk from the rest.
    exception: AssistantError | None = None
    _cancel: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)
    _discard: bool = dataclasses.field(default=False, repr=False)


class DownloadQueue:
    """Downloads run one at a time on a worker thread; pause, resume and cancel from any thread.

    ``on_change(job)`` is called from the worker thread whenever a job's state or progress
    changes; a Qt caller forwards it with a queued signal.
    """

    def __init__(self, on_change: Callable[[DownloadJob], None] | None = None) -> None:
        self._on_change = on_change
        self._jobs: list[DownloadJob] = []
        self._waiting: collections.deque[DownloadJob] = collections.deque()
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="downloads", daemon=True)
        self._thread.start()

    @property
    def jobs(self) -> list[DownloadJob]:
        with self._cond:
            return list(self._jobs)

    def add(self, variant: ModelVariant) -> DownloadJob:
        with self._cond:
            for job in self._jobs:
                if job.variant == variant and job.state in (JobState.QUEUED, JobState.DOWNLOADING):
                    return job
            job = DownloadJob(next(self._ids), variant)
            self._jobs.append(job)
            self._waiting.append(job)
            self._cond.notify()
        self._changed(job)
        return job

    def pause(self, job: DownloadJob) -> None:
        with self._cond:
            if job.state == JobState.QUEUED:
                self._waiting.remove(job)
                job.state = JobState.PAUSED
            elif job.state == JobState.DOWNLOADING:
                job._cancel.set()  # the worker marks it paused when the transfer stops
                return
            else:
                return
        self._changed(job)

    def resume(self, job: DownloadJob) -> None:
        with self._cond:
            if job.state not in (JobState.PAUSED, JobState.FAILED):
                return
            job._cancel = threading.Event()
            job.state, job.error, job.exception = JobState.QUEUED, None, None
            self._waiting.append(job)
            self._cond.notify()
        self._changed(job)

    def cancel(self, job: DownloadJob) -> None:
        """Stop and delete the partial files."""
        with self._cond:
            job._discard = True
            if job.state == JobState.DOWNLOADING:
                job._cancel.set()
                return
            if job.state == JobState.QUEUED:
                self._waiting.remove(job)
            if job.state in (JobState.QUEUED, JobState.PAUSED, JobState.FAILED):
                job.state = JobState.CANCELLED
            else:
                return
        self._discard_files(job)
        self._changed(job)

    def wait(self, job: DownloadJob, timeout: float | None = None) -> bool:
        """Block until ``job`` is no longer queued or downloading (tests, the CLI)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while job.state in (JobState.QUEUED, JobState.DOWNLOADING):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Pause whatever runs (its partial is kept) and stop the worker."""
        with self._cond:
            self._closed = True
            for job in self._jobs:
                if job.state == JobState.DOWNLOADING:
                    job._cancel.set()
            self._cond.notify_all()
        self._thread.join(timeout)

    def _changed(self, job: DownloadJob) -> None:
        if self._on_change is None:
            return
        # Under the lock (an RLock), so listeners see a job's changes in the order they happened,
        # whichever thread made them. Listeners must be quick: a Qt caller only emits a signal.
        with self._cond:
            try:
                self._on_change(job)
            except Exception:
                log.exception("download listener failed")

    def _discard_files(self, job: DownloadJob) -> None:
        for f in job.variant.files:
            downloads.discard(job.variant.repo, f.filename)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._waiting.popleft()
                job.state = JobState.DOWNLOADING
            self._changed(job)

            def report(p: Progress, job: DownloadJob = job) -> None:
                job.progress = p
                self._changed(job)

            failure: AssistantError | None = None
            try:
                job.path = downloads.download_variant(
                    job.variant, progress=report, cancel=job._cancel
                )
                state, error = JobState.DONE, None
            except DownloadCancelled:
                state, error = (JobState.CANCELLED if job._discard else JobState.PAUSED), None
            except AssistantError as exc:
                state, error, failure = JobState.FAILED, str(exc), exc
            except Exception as exc:  # a bug: keep the worker alive, show it as a failure
                log.exception("download of %s failed", job.variant.spec)
                state, error = JobState.FAILED, f"Unexpected error: {exc}"
            if state == JobState.CANCELLED:
                self._discard_files(job)
            with self._cond:
                job.state, job.error, job.exception = state, error, failure
                self._cond.notify_all()
            self._changed(job)
