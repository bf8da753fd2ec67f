"""``python -m assistant`` and the ``assistant`` command: the desktop app when no command is
given, else the terminal face (assistant/cli/); ``--self-test`` checks both."""

from __future__ import annotations

import sys
from types import ModuleType


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from assistant import files

    # Every file this process (and the engine it starts) creates is owner-only.
    files.make_private_by_default()
    if argv[:1] == ["--cpu-probe"] and len(argv) == 2:
        # The CPU probe's child (engine/cpu_probe.py): kept out of the CLI's parser and help.
        from assistant.engine.cpu_probe import run_child

        return run_child(argv[1])
    if argv == ["--hardware"]:
        # machine.detect_in_child()'s child: GPU drivers run here, not in the app's process.
        from assistant.engine.crash_injection import maybe_crash
        from assistant.hardware.machine import print_child_answer

        maybe_crash("hardware")
        return print_child_answer()
    from assistant.cli import main as cli

    parser = cli.build_parser()
    args = parser.parse_args(argv)
    if args.command is None and not args.self_test:
        if args.model:
            parser.error("--model goes with --self-test; in the app, pick the model above the chat")
        # No command: the desktop app, once this desktop is known to be able to show it.
        from assistant.errors import AssistantError

        try:
            app = _desktop_app()
        except AssistantError as exc:
            print(f"assistant: {exc}", file=sys.stderr)
            return 1
        return app.run([sys.argv[0], *argv])
    return cli.run(args, check_gui=_check_gui)


def _desktop_app() -> ModuleType:
    """``assistant.ui.app``, once this desktop can show its window (the libraries Qt's platform
    plugins need are read first: Qt itself would abort); AssistantError says why not."""
    from assistant.errors import AssistantError
    from assistant.ui.system_libraries import desktop_problem

    if (problem := desktop_problem()) is not None:
        raise AssistantError(problem)
    try:
        from assistant.ui import app
    except ImportError as exc:  # Qt itself did not load (a library ldd could not name)
        raise AssistantError(f"The window cannot open: Qt did not load ({exc}).") from exc
    return app


def _check_gui() -> None:
    """The self-test's last step, in the one module that may reach both faces: Qt is imported
    only now, so a machine that cannot load it still hears how the engine and database did."""
    _desktop_app().check_gui()


if __name__ == "__main__":
    sys.exit(main())
