"""Assistant: private chat with local large language models."""

from __future__ import annotations

__version__ = "0.1.0"
APP_NAME = "Assistant"
