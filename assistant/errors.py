"""Expected failures, each with a message fit to show a user.

Anything raised that is not an ``AssistantError`` is a bug: the GUI's excepthook and the CLI log
it with its traceback. An ``AssistantError`` is shown as its message alone.
"""

from __future__ import annotations

import signal
import sys


class AssistantError(Exception):
    """An expected failure; ``str(error)`` is the sentence shown to the user."""


class ModelError(AssistantError):
    """A model could not be found, read or loaded."""


class InvalidModelFile(ModelError):
    """The file is missing, truncated, or not a GGUF model at all."""


class ModelNotLoaded(ModelError):
    """Generation was asked for before any model was loaded."""


class GenerationError(AssistantError):
    """llama.cpp failed while evaluating or sampling."""


class RequestRejected(GenerationError):
    """The request cannot be served as asked (its prompt exceeds the context): nothing ran."""


class EngineBusy(GenerationError):
    """Every slot is busy and the queue is full: try again in ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class EngineUnavailable(AssistantError):
    """The engine process could not be reached, or went away during a request."""

    def __init__(self, message: str, partial_text: str = "", partial_reasoning: str = ""):
        super().__init__(message)
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning


class StorageError(AssistantError):
    """The conversation database could not be read or written."""


class DatabaseLocked(StorageError):
    """Another process holds the database or the single-instance lock."""


class DatabaseReadOnly(StorageError):
    """The database file or its folder cannot be written."""


class DiskFull(StorageError):
    """The disk holding the data directory is full."""


class ConversationNotFound(StorageError):
    """No conversation has the given id."""


class MessageNotFound(StorageError):
    """No message has the given id (its conversation may have been deleted)."""


class DownloadError(AssistantError):
    """A model could not be searched for, resolved or downloaded."""


class NetworkError(DownloadError):
    """The server could not be reached or the connection dropped."""


class RepoNotFound(DownloadError):
    """No such repository or file on the Hub."""


class GatedRepoError(DownloadError):
    """The repository needs an accepted license and a Hugging Face token."""


class NotEnoughDiskSpace(DownloadError):
    """The download would not fit on the disk."""


class ChecksumMismatch(DownloadError):
    """The downloaded bytes do not match the sha256 the Hub published."""


class DownloadCancelled(DownloadError):
    """The user cancelled or paused the download; the partial file is kept."""


def describe_exit(code: int) -> str:
    """How a process ended, in words: SIGSEGV, exit code 3..."""
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    if sys.platform == "win32" and code >= 0xC0000000:
        return f"exception 0x{code:08X}"
    return f"exit code {code}"
