"""``python -m assistant`` and the ``assistant`` command."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from assistant import files

    # Every file this process (and the engine it starts) creates is owner-only.
    files.make_private_by_default()
    if argv[:1] == ["--cpu-probe"] and len(argv) == 2:
        # The CPU probe's child (engine/cpu_probe.py): kept out of the CLI's parser and help.
        from assistant.engine.cpu_probe import run_child

        return run_child(argv[1])
    from assistant.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
