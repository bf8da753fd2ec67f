"""The engine: the process that owns llama.cpp (``assistant serve``), and its records.

- ``records``: what engine and clients exchange (no llama.cpp here, clients import it);
- ``llama``: one llama.cpp model and context, driven through the C API;
- ``runner``: the one inference thread of an engine process and its job queue;
- ``server``: the OpenAI-compatible HTTP face (Starlette on uvicorn);
- ``serve``: the ``assistant serve`` process itself;
- ``supervisor``: starts, watches and restarts an engine process, stepping down after crashes;
- ``configs``: the configuration that worked, per llama.cpp build, CPU and model;
- ``cpu_probe``: whether llama.cpp's AMX path is safe on this CPU, found out in a child.
"""

from assistant.engine.records import Completion, EngineConfig, GenerationParams, LoadedModel

__all__ = ["Completion", "EngineConfig", "GenerationParams", "LoadedModel"]
