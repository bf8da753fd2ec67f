"""Assistant: private chat with local large language models."""

from __future__ import annotations

import os

__version__ = "0.1.0"
APP_NAME = "Assistant"

# No telemetry, ours or a library's: huggingface_hub reads this once, when it is imported.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
