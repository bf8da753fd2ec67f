"""Conversations: the SQLite file they live in (``storage``), its schema (``migrations``),
search over every message (``search``) and exports (``export``)."""
