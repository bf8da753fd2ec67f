"""The engine configuration to use per llama.cpp build, CPU and model, and the fallback ladder.

When an engine process crashes twice at the same stage with the same model, the supervisor
steps that model's configuration down one rung and writes it here; the engine process reads it
at every load, so the next start (of the app, the CLI or ``assistant serve``) does not crash
first. Keys are the engine's ``build_key`` (llama.cpp build and CPU) and the model file's name
and size.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assistant import files, paths
from assistant.records import EngineConfig

log = logging.getLogger(__name__)

MIN_CTX = 512


def _key(build_key: str, model: Path) -> str:
    try:
        size = model.stat().st_size
    except OSError:
        size = 0
    return f"{build_key}:{model.name}:{size}"


def _read() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(paths.engine_configs_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered(build_key: str, model: Path) -> EngineConfig:
    """The configuration this model runs with here: the default until a crash stepped it down."""
    entry = _read().get(_key(build_key, model))
    if not isinstance(entry, dict):
        return EngineConfig()
    try:
        return EngineConfig.from_json(entry)
    except (TypeError, ValueError):
        return EngineConfig()


def remember(build_key: str, model: Path, config: EngineConfig) -> None:
    data = _read()
    data[_key(build_key, model)] = config.to_json()
    _write(data)


def step_down(config: EngineConfig, effective: Mapping[str, Any]) -> EngineConfig | None:
    """The next safer configuration, skipping rungs that would change nothing; None at the end.

    ``effective`` is what the engine really used at the crash: ``extra_bufts`` (after the CPU
    probe), ``gpu_layers`` and ``n_ctx``.
    """
    step = config.step
    # The GPU first: with layers on a GPU, a native crash is most often its driver's. (-1, the
    # fit estimate decides, on a GPU build may offload too.)
    if config.gpu_layers != 0 and int(effective.get("gpu_layers", 0) or 0) != 0:
        return dataclasses.replace(
            config, gpu_layers=0, step=step + 1, notes=(*config.notes, "without GPU layers")
        )
    if config.extra_bufts and effective.get("extra_bufts", False):
        return dataclasses.replace(
            config,
            extra_bufts=False,
            step=step + 1,
            notes=(*config.notes, "without llama.cpp's extra buffer types (AMX, repacking)"),
        )
    n_ctx = int(effective.get("n_ctx", 0) or 0)
    current = min(n_ctx, config.max_ctx) if config.max_ctx else n_ctx
    if current > MIN_CTX:
        smaller = max(MIN_CTX, current // 2)
        return dataclasses.replace(
            config,
            max_ctx=smaller,
            step=step + 1,
            notes=(*config.notes, f"with a smaller context ({smaller:,} tokens)"),
        )
    return None


def describe(config: EngineConfig) -> str:
    """A sentence for the user about a stepped-down configuration ("" for the normal one)."""
    if not config.notes:
        return ""
    return "After crashes, this model runs " + ", ".join(config.notes) + "."


# The last crash per build (stage, model), kept across processes for the "twice in a row" rule.
_CRASH_KEY = "last-crash:"


def last_crash(build_key: str) -> tuple[str, str] | None:
    entry = _read().get(_CRASH_KEY + build_key)
    if isinstance(entry, dict) and {"stage", "model"} <= entry.keys():
        return str(entry["stage"]), str(entry["model"])
    return None


def record_crash(build_key: str, stage: str, model: str) -> None:
    data = _read()
    data[_CRASH_KEY + build_key] = {"stage": stage, "model": model}
    _write(data)


def forget_crash(build_key: str) -> None:
    data = _read()
    if data.pop(_CRASH_KEY + build_key, None) is not None:
        _write(data)


def _write(data: dict[str, dict[str, object]]) -> None:
    try:
        files.write_private_json(paths.engine_configs_path(), data)
    except OSError as exc:
        log.warning("Could not remember the engine configuration: %s", exc)
