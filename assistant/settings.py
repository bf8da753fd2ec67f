"""User settings: one dataclass, saved as JSON atomically."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from assistant import paths

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = "You are a helpful, concise assistant."


@dataclass
class Settings:
    # File name (in the models folder) or absolute path of the model picked last.
    default_model: str | None = None
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    n_ctx: int = 4096
    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.95
    # -1: let the fit estimate decide how many layers go to the GPU.
    n_gpu_layers: int = -1
    # A Hugging Face token for gated repositories (HF_TOKEN wins when set). The file is
    # written readable by its owner only.
    hf_token: str | None = None
    window_geometry: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read the settings; a missing or damaged file gives the defaults (logged, not fatal)."""
        path = path or paths.settings_path()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("Ignoring unreadable settings file %s: %s", path, exc)
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, path: Path | None = None) -> None:
        """Write atomically: a crash mid-write leaves the old file, never half a file."""
        path = path or paths.settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=path.parent)
        try:
            os.chmod(tmp, 0o600)  # mkstemp's default too, but say it: the token lives here
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(dataclasses.asdict(self), f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
