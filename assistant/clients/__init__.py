"""The app's side of engines: the client of any OpenAI-compatible server (``openai_client``),
ours with its extensions (``engine_client``), the supervisor that starts and watches our engine
process (``supervisor``), remote engines (``remote``), and the engine's /metrics read back for
the Monitor (``metrics``)."""
