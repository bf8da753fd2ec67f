"""The one inference thread of an engine process, and the queue of jobs it works through.

The HTTP thread never touches llama.cpp: it submits a job (load, generate, unload) and gets a
``concurrent.futures.Future`` back; callbacks (load progress, text pieces) run on the inference
thread and must only hand data over (``loop.call_soon_threadsafe``).

Generation is continuous batching (``batch.Scheduler``): up to S requests run at once, one
``llama_decode`` per step for all of them. Past S, requests wait in a bounded FIFO queue
(``EngineBusy`` when it is full: the HTTP face answers 429). Interactive requests (the app's own,
and the CLI's) go ahead of queued API requests. A load, an unload, or a request for another
model waits for the running replies to end; nothing behind it is admitted meanwhile. A request
whose ``stop`` Event is set leaves the queue, or its slot, at the next step.

Each stage change (load, prompt, generate, idle) is reported through ``report`` before it
happens, so that if llama.cpp kills the process, the supervisor knows where it died.

Over 400 lines: the one inference thread's loop, and the jobs it runs (load, generate, unload),
which share its state: the model, the scheduler and the queue.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant import paths
from assistant.engine import configs, cpu_probe, crash_injection
from assistant.engine.metrics import Metrics
from assistant.errors import (
    AssistantError,
    EngineBusy,
    InvalidModelFile,
    ModelNotLoaded,
    RequestRejected,
)
from assistant.hardware import machine
from assistant.models import fit
from assistant.models.gguf_info import read_gguf_info
from assistant.records import (
    BUILTIN_EMBEDDING_FILE,
    Completion,
    EngineConfig,
    FinishReason,
    GenerationParams,
    LoadedModel,
)

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]

DEFAULT_MAX_QUEUE = 256  # requests waiting for a slot before 429
SNAPSHOT_EVERY_S = 0.25  # how often the requests in flight are republished while tokens flow


@dataclass
class LoadJob:
    path: Path
    n_ctx: int
    n_gpu_layers: int
    progress: Callable[[float], None] | None = None
    future: Future[LoadedModel] = field(default_factory=Future)


@dataclass
class GenerateJob:
    messages: list[dict[str, str]]
    params: GenerationParams
    model: Path | None = None  # load this first if another is active; None: the active one
    prompt: str | None = None  # raw text (/v1/completions) instead of messages
    truncate: bool = False
    kv_state: str | None = None  # a saved KV cache to start from (the CLI's own engines)
    save_state: bool = False
    on_text: Callable[[str], None] | None = None
    on_reasoning: Callable[[str], None] | None = None  # a chat reply's thinking
    stop: threading.Event = field(default_factory=threading.Event)
    interactive: bool = False  # the app or the CLI, for the person at the keyboard
    client: str = ""  # who asked, as the Monitor shows it
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    submitted: float = field(default_factory=time.monotonic)
    # Set once the prompt is accepted (before it is evaluated) or the job is rejected, so the
    # HTTP face can answer 400 before it starts a stream.
    accepted: Future[None] = field(default_factory=Future)
    future: Future[Completion] = field(default_factory=Future)
    sequence: Any = None  # its batch.Sequence once admitted


@dataclass
class EmbedJob:
    """Texts (or token lists) to turn into vectors with an embedding model, beside the chat
    model. Interactive ones (a question being asked) go first; the others (indexing) wait
    while the person's own reply is being written."""

    model: Path
    inputs: list[str] | list[list[int]]
    interactive: bool = False
    truncate: bool = False  # cut inputs longer than the model takes (else: rejected)
    future: Future[Embeddings] = field(default_factory=Future)
    tokens: list[list[int]] = field(default_factory=list)  # the inputs, tokenized
    vectors: list[Any] = field(default_factory=list)  # done so far (arrays of rows)


@dataclass(frozen=True)
class Embeddings:
    vectors: Any  # numpy float32, one unit-length row per input
    prompt_tokens: int
    model: str


@dataclass
class UnloadJob:
    future: Future[None] = field(default_factory=Future)


Job = LoadJob | GenerateJob | UnloadJob
_CLOSE = object()


class Runner:
    """Owns the Engine; every llama.cpp call happens on its thread."""

    def __init__(
        self,
        *,
        build_key: str,
        n_ctx: int = 4096,
        n_gpu_layers: int = -1,
        threads: int = 0,
        slots: int = 0,
        max_slots: int = fit.MAX_AUTO_SLOTS,
        max_queue: int = DEFAULT_MAX_QUEUE,
        report: Report | None = None,
    ):
        self.build_key = build_key
        self.default_ctx = n_ctx
        self.default_gpu_layers = n_gpu_layers
        self.threads = threads
        self.slots = slots  # 0: as many as memory allows, up to max_slots
        self.max_slots = max_slots
        self.max_queue = max_queue
        self._report = report or (lambda event: None)
        self._jobs: queue.Queue[object] = queue.Queue()
        self._pending: deque[Job] = deque()  # the inference thread's own
        self._engine: Any = None
        self._embedder: Any = None  # an embedding model, beside the chat model
        self._embeds: deque[EmbedJob] = deque()
        # Read from the HTTP thread: plain values, replaced whole.
        self.loaded: LoadedModel | None = None
        self.loading: str | None = None
        self.config = EngineConfig()
        self.running = 0
        self.slots_total = 0
        self.in_flight: tuple[dict[str, Any], ...] = ()
        self._waiting = 0  # generate jobs submitted and not yet admitted or ended
        self._count_lock = threading.Lock()
        self.metrics = Metrics(
            running=lambda: self.running,
            queued=lambda: self.queued,
            slots_busy=lambda: self.running,
            slots_total=lambda: self.slots_total,
        )
        self._durations = (0, 0.0)  # finished requests, and their seconds in all (Retry-After)
        self._generated_since_load = False
        self._asked_ctx = 0  # the n_ctx asked for at the last load (before clamping)
        self._effective: dict[str, Any] = {}
        self._stage_now = ""
        self._published_at = 0.0
        self._thread = threading.Thread(target=self._loop, name="inference", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._jobs.put(_CLOSE)
        self._thread.join(timeout)

    def submit(self, job: Job) -> None:
        """Queue a job; EngineBusy (nothing queued) when generate jobs are past the bound."""
        if isinstance(job, GenerateJob):
            with self._count_lock:
                free = max(0, self.slots_total - self.running)
                # The person at the keyboard is never refused because other apps filled it.
                if self._waiting - free >= self.max_queue and not job.interactive:
                    self.metrics.rejected()
                    raise EngineBusy(
                        f"The engine is busy: {self.running} requests running and "
                        f"{self._waiting} waiting. Try again shortly.",
                        retry_after=self._retry_after(),
                    )
                self._waiting += 1
        elif isinstance(job, LoadJob):
            self.loading = job.path.name
        self._jobs.put(job)

    def embed(self, job: EmbedJob) -> None:
        """Queue texts to embed; the future gets an Embeddings, or the error."""
        self._jobs.put(job)

    @property
    def queued(self) -> int:
        """Generate jobs waiting for a slot."""
        return max(0, self._waiting - max(0, self.slots_total - self.running))

    def _retry_after(self) -> int:
        """Seconds until a slot is likely free: the mean request duration so far, times how
        many rounds of the slots the queue ahead is."""
        count, total = self._durations
        mean = total / count if count else 5.0
        rounds = self._waiting / max(1, self.slots_total)
        return max(1, min(600, math.ceil(mean * rounds)))

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        from assistant.engine.llama import Engine

        self._engine = Engine()
        try:
            while self._take_jobs(
                block=not self._pending and not self.running and not self._embed_ready()
            ):
                try:
                    self._drop_stopped()
                    self._start_jobs()
                    if self.running:
                        self._step()
                    if self._embed_ready():
                        self._embed_step()
                    elif not self.running:
                        self._stage("idle")
                except Exception:  # noqa: BLE001 - a bug here must not leave requests hanging
                    log.exception("The inference loop failed; ending what it held")
                    self._fail_everything("The engine failed; see its log.")
        finally:
            for job in list(self._pending):
                self._end_unstarted(job, FinishReason.CANCELLED)
            for embed in self._embeds:
                _fail_future(embed.future, AssistantError("The engine closed before this ran."))
            self._unload()
            if self._embedder is not None:
                self._embedder.close()

    def _take_jobs(self, *, block: bool) -> bool:
        """Move submitted jobs into the pending queue; False once close was asked."""
        try:
            job = self._jobs.get() if block else self._jobs.get_nowait()
            while True:
                if job is _CLOSE:
                    return False
                if isinstance(job, EmbedJob):
                    self._embeds.append(job)
                else:
                    self._pending.append(job)  # type: ignore[arg-type]
                job = self._jobs.get_nowait()
        except queue.Empty:
            return True

    def _drop_stopped(self) -> None:
        """Requests stopped (cancelled, or their client gone) before they got a slot."""
        for job in [j for j in self._pending if isinstance(j, GenerateJob) and j.stop.is_set()]:
            self._pending.remove(job)
            self._end_unstarted(job, FinishReason.CANCELLED)

    def _next_job(self) -> Job:
        """Control jobs and interactive requests first, in order; then API requests, FIFO."""
        for job in self._pending:
            if not isinstance(job, GenerateJob) or job.interactive:
                return job
        return self._pending[0]

    def _start_jobs(self) -> None:
        changed = False
        while self._pending:
            job = self._next_job()
            if not isinstance(job, GenerateJob):
                if self.running:
                    return  # it waits for the running replies to end
                self._pending.remove(job)
                self._run_control(job)
                continue
            if job.model is not None and (
                self.loaded is None or not _same_file(self.loaded.path, job.model)
            ):
                if self.running:
                    return
                try:
                    self._load(job.model, self.default_ctx, self.default_gpu_layers)
                except Exception as exc:  # noqa: BLE001 - the request says why, the loop goes on
                    self._pending.remove(job)
                    if not isinstance(exc, AssistantError):
                        log.exception("Loading %s failed", job.model)
                        exc = AssistantError(f"Loading the model failed: {exc}")
                    self._reject(job, exc)
                    continue
            if self.loaded is None:
                self._pending.remove(job)
                self._reject(job, ModelNotLoaded("No model is loaded. Load one first."))
                continue
            scheduler = self._engine.scheduler
            if not scheduler.has_free_slot:
                return
            self._pending.remove(job)
            self._admit(job, scheduler)
            changed = True
        if changed:
            self._publish()

    def _run_control(self, job: LoadJob | UnloadJob) -> None:
        try:
            if isinstance(job, LoadJob):
                self._run_load(job)
            else:
                self._unload()
                _resolve(job.future, None)
        except BaseException as exc:  # noqa: BLE001 - the loop must outlive any one job
            log.exception("Engine job failed")
            _fail_future(job.future, exc)
        finally:
            self._stage("idle")

    def _step(self) -> None:
        try:
            self._engine.scheduler.step()
        except BaseException as exc:  # noqa: BLE001 - the loop must outlive any one step
            log.exception("A decode step failed")
            for sequence in self._engine.scheduler.active:
                self._engine.scheduler.fail(sequence, f"Generation failed: {exc}")
        now = time.monotonic()
        if now - self._published_at >= SNAPSHOT_EVERY_S:
            self._publish()

    def _stage(self, stage: str, **details: Any) -> None:
        if stage == self._stage_now and not details:
            return
        self._stage_now = stage
        self._report({"event": "stage", "stage": stage, **details})

    def _unload(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self.loaded = None
        self.running = 0
        self.slots_total = 0

    # -- embeddings ----------------------------------------------------------------------------

    def _embed_ready(self) -> bool:
        """Whether an embedding job may run now: an interactive one always; indexing only
        while no reply of the person's own is being written (they come first)."""
        if not self._embeds:
            return False
        if not self.running or any(job.interactive for job in self._embeds):
            return True
        scheduler = self._engine.scheduler if self.loaded is not None else None
        active = scheduler.active if scheduler is not None else ()
        return not any(s.request.interactive for s in active)

    def _embed_step(self) -> None:
        """One batch of the first embedding job (interactive ones first), between decode steps."""
        job = next((j for j in self._embeds if j.interactive), self._embeds[0])
        try:
            embedder = self._embedder_for(job.model)
            if not job.tokens:
                job.tokens = [
                    embedder.tokenize(text) if isinstance(text, str) else list(text)
                    for text in job.inputs
                ]
                for i, tokens in enumerate(job.tokens):
                    if job.truncate:
                        job.tokens[i] = tokens = embedder.truncate(tokens)
                    embedder.check(tokens)
            done = sum(len(v) for v in job.vectors)
            self._stage("embed", model=str(job.model))
            crash_injection.maybe_crash("embed")
            job.vectors.append(embedder.embed(job.tokens[done:]))
        except BaseException as exc:  # noqa: BLE001 - the loop outlives any one job
            if not isinstance(exc, AssistantError):
                log.exception("Embedding failed")
            self._embeds.remove(job)
            _fail_future(job.future, exc)
            return
        if sum(len(v) for v in job.vectors) == len(job.tokens):
            import numpy as np

            self._embeds.remove(job)
            vectors = np.concatenate(job.vectors) if job.vectors else np.zeros((0, 0), "f4")
            self.metrics.embedded(len(job.tokens), sum(map(len, job.tokens)))
            _resolve(job.future, Embeddings(vectors, sum(map(len, job.tokens)), job.model.name))

    def _embedder_for(self, path: Path) -> Any:
        from assistant.engine.embedder import Embedder

        if self._embedder is not None and _same_file(self._embedder.path, path):
            return self._embedder
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
        self._stage("load", model=str(path))
        self._embedder = Embedder(path, n_threads=self.threads or machine.math_cores())
        return self._embedder

    # -- load ----------------------------------------------------------------------------------

    def _run_load(self, job: LoadJob) -> None:
        current = self.loaded
        if (
            current is not None
            and _same_file(current.path, job.path)
            and job.n_ctx in (0, current.n_ctx, self._asked_ctx)
        ):
            self.loading = None
            _resolve(job.future, current)  # already there: a client reconnecting, the CLI
            return
        try:
            loaded = self._load(job.path, job.n_ctx, job.n_gpu_layers, job.progress)
        except BaseException as exc:
            _fail_future(job.future, exc)
        else:
            _resolve(job.future, loaded)
        finally:
            self.loading = None

    def _load(
        self,
        path: Path,
        n_ctx: int,
        n_gpu_layers: int,
        progress: Callable[[float], None] | None = None,
    ) -> LoadedModel:
        config = configs.remembered(self.build_key, path)
        if config.max_ctx and (n_ctx <= 0 or n_ctx > config.max_ctx):
            n_ctx = config.max_ctx
        if config.gpu_layers == 0:
            n_gpu_layers = 0
        self.config = config
        self._asked_ctx = n_ctx
        n_slots = self.slots or self._auto_slots(path, n_ctx)
        # What the supervisor needs to step down if this load kills the process: what will
        # really be used (the probe's verdict, whether layers may go to a GPU, the context).
        effective = {
            "extra_bufts": config.extra_bufts and cpu_probe.extra_bufts_work(),
            "gpu_layers": n_gpu_layers if self._engine.supports_gpu_offload() else 0,
            "n_ctx": n_ctx if n_ctx > 0 else _trained_context(path),
        }
        self._stage("load", model=str(path), step=config.step, **effective)
        crash_injection.maybe_crash("load", step=config.step)
        if effective["gpu_layers"]:
            crash_injection.maybe_crash("gpu-load", step=config.step)
        try:
            loaded = self._engine.load(
                path,
                n_ctx=n_ctx,
                n_gpu_layers=n_gpu_layers,
                progress=progress,
                extra_bufts=config.extra_bufts,
                n_threads=self.threads,
                n_slots=n_slots,
            )
        finally:
            # A file that fails its checks leaves the previous model loaded; a failure later
            # leaves none. Either way, say what is really there.
            self.loaded = self._engine.model
            self.slots_total = self.loaded.n_slots if self.loaded else 0
            self.running = 0
        scheduler = self._engine.scheduler
        scheduler.on_stage = self._on_decode
        scheduler.on_token = self.metrics.rate.add
        if config.notes:
            loaded = dataclasses.replace(loaded, safe_mode_note=configs.describe(config))
        self.loaded = loaded
        self._generated_since_load = False
        # Only now: a refused file leaves the previous model, and its figures, in use.
        self._effective = {**effective, "gpu_layers": loaded.n_gpu_layers, "n_ctx": loaded.n_ctx}
        return loaded

    def _auto_slots(self, path: Path, n_ctx: int) -> int:
        """As many slots as the fit estimate puts in memory (see fit.plan_slots)."""
        try:
            info = read_gguf_info(path)
        except AssistantError:
            return 1
        hw = machine.detect()
        per_slot_ctx = n_ctx if n_ctx > 0 else (info.context_length or 4096)
        per_slot_ctx = min(per_slot_ctx, info.context_length or per_slot_ctx)
        try:
            weights = path.stat().st_size
        except OSError:
            weights = None
        return fit.plan_slots(info, per_slot_ctx, hw, cap=self.max_slots, weights_bytes=weights)

    # -- generate ------------------------------------------------------------------------------

    def _admit(self, job: GenerateJob, scheduler: Any) -> None:
        from assistant.engine.batch import Request

        request = Request(
            job.messages,
            job.params,
            prompt=job.prompt,
            truncate=job.truncate,
            on_text=job.on_text,
            on_reasoning=job.on_reasoning,
            on_done=lambda completion: self._done(job, completion),
            stop=job.stop,
            interactive=job.interactive,
            state_key=job.kv_state,
            state_file=str(_state_file(job.kv_state)) if job.kv_state else None,
            tag=job,
        )
        try:
            job.sequence = scheduler.admit(request)
        except RequestRejected as exc:  # nothing ran
            self._reject(job, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a template that fails: the reply is the error
            if not isinstance(exc, AssistantError):
                log.exception("Starting a request failed")
            log.warning("Generation failed: %s", exc)
            self._end_unstarted(job, FinishReason.ERROR, str(exc))
            return
        with self._count_lock:
            self._waiting -= 1
            self.running += 1
        _resolve(job.accepted, None)

    def _on_decode(self, kind: str) -> None:
        model = str(self.loaded.path) if self.loaded else ""
        if kind != self._stage_now:
            self._stage(kind, model=model, **self._effective)
            stage = "decode" if kind == "prompt" else kind
            crash_injection.maybe_crash(stage, step=self.config.step)

    def _done(self, job: GenerateJob, completion: Completion) -> None:
        """A running request ended (on the inference thread, its slot still as it left it)."""
        with self._count_lock:
            self.running -= 1
        if (
            completion.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
            and not self._generated_since_load
        ):
            self._generated_since_load = True
            self._report({"event": "worked", "model": str(self.loaded.path) if self.loaded else ""})
        if job.save_state and job.kv_state and completion.finish_reason != FinishReason.ERROR:
            slot = job.sequence.slot if job.sequence is not None else None
            try:
                if slot is not None and self._engine.save_state(
                    _state_file(job.kv_state), slot.seq_id, slot.tokens
                ):
                    slot.state_key = job.kv_state
            except OSError as exc:  # a full disk costs the next turn its head start, no more
                log.warning("Could not save the KV cache: %s", exc)
        waited = max(0.0, time.monotonic() - job.submitted - completion.duration_s)
        self.metrics.finished(completion, waited)
        count, total = self._durations
        self._durations = (count + 1, total + waited + completion.duration_s)
        _resolve(job.future, completion)
        self._publish()

    def _reject(self, job: GenerateJob, exc: AssistantError) -> None:
        with self._count_lock:
            self._waiting -= 1
        self.metrics.requests.labels("error").inc()
        _fail_future(job.accepted, exc)
        _fail_future(job.future, exc)

    def _end_unstarted(self, job: Job, reason: FinishReason, error: str | None = None) -> None:
        """A job that never ran: cancelled in the queue, or the engine closing."""
        if isinstance(job, GenerateJob):
            with self._count_lock:
                self._waiting -= 1
            completion = Completion.failed(error or "", model_file=self._engine.model_file)
            completion = dataclasses.replace(completion, finish_reason=reason, error=error)
            self.metrics.finished(completion, 0.0)
            _resolve(job.accepted, None)
            _resolve(job.future, completion)
        else:
            _fail_future(job.future, AssistantError("The engine closed before this ran."))

    def _fail_everything(self, message: str) -> None:
        """After an unexpected failure of the loop: every request ends, with ``message``."""
        scheduler = self._engine.scheduler if self.loaded is not None else None
        for sequence in scheduler.active if scheduler is not None else ():
            try:
                scheduler.fail(sequence, message)  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001
                log.exception("Could not end a request")
        for job in list(self._pending):
            if isinstance(job, GenerateJob):
                self._pending.remove(job)
                self._end_unstarted(job, FinishReason.ERROR, message)

    def _publish(self) -> None:
        """What the Monitor's table shows: every request in flight, running or waiting."""
        now = time.monotonic()
        self._published_at = now
        model = self.loaded.name if self.loaded else ""
        rows: list[dict[str, Any]] = []
        scheduler = self._engine.scheduler if self.loaded is not None else None
        for sequence in scheduler.active if scheduler is not None else ():
            job = sequence.request.tag
            state = "generating" if sequence.generating else "prompt"
            rows.append(_row(job, model, state, now, sequence.completion_tokens))
        for job in self._pending:
            if isinstance(job, GenerateJob):
                rows.append(_row(job, job.model.name if job.model else model, "waiting", now, 0))
        self.in_flight = tuple(rows)


def _resolve(future: Future[Any], value: Any) -> None:
    """Set a result unless the future is done (a waiter that went away cancels it)."""
    if not future.done():
        try:
            future.set_result(value)
        except Exception:  # noqa: BLE001 - cancelled in between: nobody is waiting
            pass


def _fail_future(future: Future[Any], exc: BaseException) -> None:
    if not future.done():
        try:
            future.set_exception(exc)
        except Exception:  # noqa: BLE001
            pass


def _row(job: GenerateJob, model: str, state: str, now: float, tokens: int) -> dict[str, Any]:
    return {
        "id": job.id,
        "client": job.client,
        "model": model,
        "state": state,
        "completion_tokens": tokens,
        "age_s": round(now - job.submitted, 3),
        "interactive": job.interactive,
    }


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def _state_file(key: str) -> Path:
    return paths.kv_cache_dir() / f"{key}.state"


def _trained_context(path: Path) -> int:
    try:
        return read_gguf_info(path).context_length or 4096
    except AssistantError:
        return 4096


def resolve_request_model(name: str, loaded: LoadedModel | None) -> Path:
    """The model a request names, exactly: the loaded one (by file name, stem or path), an
    installed one (by file name or stem), or a GGUF file by absolute path (the app's own
    clients). No guessing by substring: a name that matches nothing is a 404."""
    if loaded is not None and name in (loaded.name, loaded.path.stem, str(loaded.path)):
        return loaded.path
    folder = paths.models_dir()
    for candidate in (folder / name, folder / f"{name}.gguf"):
        if candidate.suffix == ".gguf" and candidate.parent == folder and candidate.is_file():
            return candidate
    path = Path(name)
    if path.is_absolute() and path.suffix == ".gguf":
        if path.is_file():
            return path
        raise InvalidModelFile(f"The model file {path} does not exist.")
    raise InvalidModelFile(f"No model named '{name}' is installed.")


def embedding_model_files() -> list[Path]:
    """The embedding GGUFs installed (the built-in one among them once installed)."""
    return sorted(paths.embedding_models_dir().glob("*.gguf"))


def resolve_embedding_model(name: str | None) -> Path:
    """The embedding model a request names (file name or stem, or a GGUF's absolute path);
    with no name, the only one installed, or the built-in one."""
    installed = embedding_model_files()
    if not name:
        if len(installed) == 1:
            return installed[0]
        builtin = [p for p in installed if p.name == BUILTIN_EMBEDDING_FILE]
        if builtin:
            return builtin[0]
        raise InvalidModelFile(
            "Name an embedding model in 'model'."
            if installed
            else "No embedding model is installed."
        )
    for path in installed:
        if name in (path.name, path.stem):
            return path
    path = Path(name)
    if path.is_absolute() and path.suffix == ".gguf" and path.is_file():
        return path
    names = ", ".join(p.name for p in installed) or "none"
    raise InvalidModelFile(f"No embedding model named '{name}' is installed (installed: {names}).")
