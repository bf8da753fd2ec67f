"""The one inference thread of an engine process, and the queue of jobs it works through.

The HTTP thread never touches llama.cpp: it submits a job (load, generate, unload) and gets a
``concurrent.futures.Future`` back; callbacks (load progress, text pieces) run on the inference
thread and must only hand data over (``loop.call_soon_threadsafe``). Jobs run one at a time in
the order they came; a generation's ``stop`` Event is the one thing set from outside, and the
engine checks it between tokens and, through llama.cpp's abort callback, during the prompt.

Each stage change (load, prompt, generate, idle) is reported through ``report`` before it
happens, so that if llama.cpp kills the process, the supervisor knows where it died.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant import paths
from assistant.engine import configs, cpu_probe, crash_injection
from assistant.engine.records import Completion, EngineConfig, GenerationParams, LoadedModel
from assistant.errors import AssistantError, InvalidModelFile, ModelNotLoaded
from assistant.gguf_info import read_gguf_info

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]


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
    stop: threading.Event = field(default_factory=threading.Event)
    # Set once the prompt is accepted (before it is evaluated) or the job is rejected, so the
    # HTTP face can answer 400 before it starts a stream.
    accepted: Future[None] = field(default_factory=Future)
    future: Future[Completion] = field(default_factory=Future)


@dataclass
class UnloadJob:
    future: Future[None] = field(default_factory=Future)


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
        report: Report | None = None,
    ):
        self.build_key = build_key
        self.default_ctx = n_ctx
        self.default_gpu_layers = n_gpu_layers
        self.threads = threads
        self._report = report or (lambda event: None)
        self._jobs: queue.Queue[object] = queue.Queue()
        self._engine: Any = None
        # Read from the HTTP thread: plain references, replaced whole.
        self.loaded: LoadedModel | None = None
        self.loading: str | None = None
        self.config = EngineConfig()
        self._generated_since_load = False
        self._asked_ctx = 0  # the n_ctx asked for at the last load (before clamping)
        self._effective: dict[str, Any] = {}
        self._state_in_cache: str | None = None
        self._thread = threading.Thread(target=self._loop, name="inference", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._jobs.put(_CLOSE)
        self._thread.join(timeout)

    def submit(self, job: LoadJob | GenerateJob | UnloadJob) -> None:
        if isinstance(job, LoadJob):
            self.loading = job.path.name
        self._jobs.put(job)

    @property
    def queued(self) -> int:
        return self._jobs.qsize()

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        from assistant.engine.llama import Engine

        self._engine = Engine()
        while True:
            job = self._jobs.get()
            if job is _CLOSE:
                break
            try:
                if isinstance(job, LoadJob):
                    self._run_load(job)
                elif isinstance(job, GenerateJob):
                    self._run_generate(job)
                elif isinstance(job, UnloadJob):
                    self._unload()
                    job.future.set_result(None)
            except BaseException as exc:  # noqa: BLE001 - the loop must outlive any one job
                log.exception("Engine job failed")
                future = getattr(job, "future", None)
                if future is not None and not future.done():
                    future.set_exception(exc)
                accepted = getattr(job, "accepted", None)
                if accepted is not None and not accepted.done():
                    accepted.set_exception(exc)
            finally:
                self._stage("idle")
        self._unload()

    def _stage(self, stage: str, **details: Any) -> None:
        self._report({"event": "stage", "stage": stage, **details})

    def _unload(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self.loaded = None
        self._state_in_cache = None

    # -- load ----------------------------------------------------------------------------------

    def _run_load(self, job: LoadJob) -> None:
        current = self.loaded
        if (
            current is not None
            and _same_file(current.path, job.path)
            and job.n_ctx in (0, current.n_ctx, self._asked_ctx)
        ):
            self.loading = None
            job.future.set_result(current)  # already there: a client reconnecting, the CLI
            return
        try:
            loaded = self._load(job.path, job.n_ctx, job.n_gpu_layers, job.progress)
        except BaseException as exc:
            job.future.set_exception(exc)
        else:
            job.future.set_result(loaded)
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
        # What the supervisor needs to step down if this load kills the process: what will
        # really be used (the probe's verdict, whether layers may go to a GPU, the context).
        effective = {
            "extra_bufts": config.extra_bufts and cpu_probe.extra_bufts_work(),
            "gpu_layers": n_gpu_layers if self._engine.supports_gpu_offload() else 0,
            "n_ctx": n_ctx if n_ctx > 0 else _trained_context(path),
        }
        self._stage("load", model=str(path), step=config.step, **effective)
        crash_injection.maybe_crash("load", step=config.step)
        self._state_in_cache = None
        try:
            loaded = self._engine.load(
                path,
                n_ctx=n_ctx,
                n_gpu_layers=n_gpu_layers,
                progress=progress,
                extra_bufts=config.extra_bufts,
                n_threads=self.threads,
            )
        finally:
            # A file that fails its checks leaves the previous model loaded; a failure later
            # leaves none. Either way, say what is really there.
            self.loaded = self._engine.model
        if config.notes:
            import dataclasses

            loaded = dataclasses.replace(loaded, safe_mode_note=configs.describe(config))
        self.loaded = loaded
        self._generated_since_load = False
        # Only now: a refused file leaves the previous model, and its figures, in use.
        self._effective = {**effective, "gpu_layers": loaded.n_gpu_layers, "n_ctx": loaded.n_ctx}
        return loaded

    # -- generate ------------------------------------------------------------------------------

    def _run_generate(self, job: GenerateJob) -> None:
        try:
            if job.model is not None and (
                self.loaded is None or _same_file(self.loaded.path, job.model) is False
            ):
                self._load(job.model, self.default_ctx, self.default_gpu_layers)
            if self.loaded is None:
                raise ModelNotLoaded("No model is loaded. Load one first.")
        except AssistantError as exc:
            job.accepted.set_exception(exc)
            job.future.set_exception(exc)
            return
        engine = self._engine
        self._use_state(job)
        step = self.config.step

        def on_prompt(n_prompt: int, n_cached: int) -> None:
            job.accepted.set_result(None)
            self._stage(
                "prompt", model=str(self.loaded.path) if self.loaded else "", **self._effective
            )
            crash_injection.maybe_crash("decode", step=step)

        first = True

        def on_text(piece: str) -> None:
            nonlocal first
            if first:
                first = False
                self._stage(
                    "generate",
                    model=str(self.loaded.path) if self.loaded else "",
                    **self._effective,
                )
                crash_injection.maybe_crash("generate", step=step)
            if job.on_text is not None:
                job.on_text(piece)

        try:
            completion = engine.generate(
                job.messages,
                job.params,
                on_text=on_text,
                stop=job.stop,
                prompt=job.prompt,
                truncate=job.truncate,
                on_prompt=on_prompt,
            )
        except AssistantError as exc:  # RequestRejected: nothing ran
            job.accepted.set_exception(exc)
            job.future.set_exception(exc)
            return
        if not job.accepted.done():
            job.accepted.set_result(None)
        if completion.finish_reason in ("stop", "length") and not self._generated_since_load:
            self._generated_since_load = True
            self._report({"event": "worked", "model": str(self.loaded.path) if self.loaded else ""})
        if job.save_state and job.kv_state and completion.finish_reason != "error":
            try:
                if engine.save_state(_state_file(job.kv_state)):
                    self._state_in_cache = job.kv_state
            except OSError as exc:  # a full disk costs the next turn its head start, no more
                log.warning("Could not save the KV cache: %s", exc)
        job.future.set_result(completion)

    def _use_state(self, job: GenerateJob) -> None:
        """Start from the KV cache saved for this conversation when the cache holds another."""
        if not job.kv_state or job.kv_state == self._state_in_cache:
            return
        restored = self._engine.load_state(_state_file(job.kv_state))
        self._state_in_cache = job.kv_state if restored else None


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
