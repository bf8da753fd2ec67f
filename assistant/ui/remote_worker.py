"""Replies from remote engines, streamed on a QThread of their own.

Its own thread, not the engine thread: a local model loading (seconds to minutes) must not hold
up a chat with the GPU box, nor a slow remote server the local engine. Stop is the controller's
``threading.Event``, which shuts the stream's socket down at once.
"""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, Signal, Slot

from assistant.clients.openai_client import OpenAIClient, in_use
from assistant.endpoints import RemoteEngine
from assistant.errors import AssistantError, EngineUnavailable
from assistant.records import Completion, GenerationParams

log = logging.getLogger(__name__)


class RemoteWorker(QObject):
    """Signals:
    text_generated(str): a piece of the reply.
    reasoning_generated(str): a piece of the reasoning, when the server sends it apart.
    retrying(str): the server is busy or failing; the sentence says when it is asked again.
    generation_finished(object): the Completion, also for cancelled and failed replies.
    unreachable(str, str): the engine's name and why it could not be reached.
    """

    text_generated = Signal(str)
    reasoning_generated = Signal(str)
    retrying = Signal(str)
    generation_finished = Signal(Completion)
    unreachable = Signal(str, str)

    def __init__(self, stop: threading.Event):
        super().__init__()
        self._stop = stop

    @Slot()
    def name_thread(self) -> None:
        threading.current_thread().name = "remote-engine"

    @Slot(object, str, object, object)
    def generate(
        self,
        engine: RemoteEngine,
        model: str,
        messages: list[dict[str, str]],
        params: GenerationParams,
    ) -> None:
        try:
            with in_use(engine), OpenAIClient.for_engine(engine) as client:
                completion = client.chat(
                    messages,
                    params,
                    model=model,
                    on_text=self.text_generated.emit,
                    on_reasoning=self.reasoning_generated.emit,
                    on_retry=self.retrying.emit,
                    stop=self._stop,
                )
        except EngineUnavailable as exc:
            completion = Completion.failed(str(exc), exc.partial_text, model)
            completion.reasoning = exc.partial_reasoning  # kept, as the text is
            self.unreachable.emit(engine.name, str(exc))
        except AssistantError as exc:
            completion = Completion.failed(str(exc), "", model)
        except Exception as exc:
            log.exception("Unexpected error while generating remotely")
            completion = Completion.failed(f"Generation failed: {exc}", "", model)
        self.generation_finished.emit(completion)
