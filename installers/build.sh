#!/usr/bin/env bash
# Build a self-contained folder (Linux, Windows under Git Bash) or .app (macOS) into dist/.
# Run from a checkout set up with the README's run command.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || py=.venv/Scripts/python.exe
"$py" -m pip install --quiet "pyinstaller>=6.10"
"$py" -m PyInstaller --noconfirm --clean --distpath dist --workpath build installers/assistant.spec
case "$(uname -s)" in
  Linux)
    install -Dm644 resources/assistant.desktop dist/Assistant/share/applications/assistant.desktop
    echo "Built dist/Assistant/Assistant; resources/assistant.desktop is the launcher entry." ;;
  Darwin) echo "Built dist/Assistant.app" ;;
  *) echo "Built dist/Assistant/Assistant.exe" ;;
esac
