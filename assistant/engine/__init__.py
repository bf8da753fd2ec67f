"""The engine: the process that owns llama.cpp (``assistant serve``). Everything here runs
inside that process, except ``configs``, which the supervisor (the app's side:
``assistant.clients``) also writes; what the two exchange is ``assistant.records``.

- ``llama``: one llama.cpp model and context, driven through the C API;
- ``chat_format``: a model's chat template, rendered into the prompt;
- ``batch``: the continuous-batching scheduler; ``text_stream``: a reply's text as it streams;
- ``runner``: the one inference thread of an engine process and its job queue;
- ``server``: the OpenAI-compatible HTTP face (Starlette on uvicorn), with ``gate`` (key, Host,
  CORS), ``requests`` (request validation) and ``metrics`` (Prometheus figures);
- ``serve``: the ``assistant serve`` process itself;
- ``configs``: the configuration that worked, per llama.cpp build, CPU and model (the fallback
  ladder the supervisor steps down);
- ``cpu_probe``: whether llama.cpp's AMX path is safe on this CPU, found out in a child;
- ``llama_log``: llama.cpp's log, into ``logging``; ``crash_injection``: crashes on demand, for
  tests.
"""
