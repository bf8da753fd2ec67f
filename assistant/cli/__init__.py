"""The terminal face: ``assistant chat``, ``chats``, ``search``, ``export``, ``serve``,
``models``, ``engines`` and ``--self-test``; ``main`` holds the argument tree and runs a
command, and each command group has a module of its own."""

EXIT_OK, EXIT_FAILED = 0, 1
