"""The chat, for the GUI and the CLI alike: one turn's lifecycle (``turn``), a chat's own
generation settings and presets (``settings``), and where a streaming reply's Markdown can be
cut into finished blocks (``markdown_stream``)."""
