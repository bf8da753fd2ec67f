"""Loaded by every Python process started with this folder on PYTHONPATH (the engine process
of the tests that audit sockets): records each socket connect, bind and name lookup."""

import os
import sys

_log = os.environ.get("ASSISTANT_TEST_SOCKET_AUDIT")

if _log:

    def _audit(event: str, args: tuple) -> None:
        if event in ("socket.connect", "socket.bind"):
            target = args[1]
        elif event == "socket.getaddrinfo":
            target = (args[0], args[1])
        else:
            return
        with open(_log, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {event} {target!r}\n")

    sys.addaudithook(_audit)
