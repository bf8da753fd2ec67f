"""The README's screenshots: the chat window in light and dark, with a reasoning block and code.

    xvfb-run -a .venv/bin/python resources/screenshots/take_screenshots.py

Under a real X server (Xvfb), not the offscreen platform, so that fonts and the Fusion style
render as a user sees them. The window talks to tests/fake_engine.py (a tiny model whose
template opens <think>, and a scripted reply), so the pictures are the same on every run and
need no model download.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = Path(__file__).resolve().parent

QUESTION = "How do I read a file line by line in Python?"
THOUGHT = (
    "The user wants to read a file line by line. Iterating over the file object is the idiom: "
    "it is lazy, so memory stays flat. A small example that counts words shows it best."
)
REPLY = """Open it in a `with` block and loop over the file object: it yields one line at a time,
so even a large file is never read into memory at once.

```python
from pathlib import Path

def count_words(path: Path) -> int:
    total = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            total += len(line.split())
    return total
```

Each `line` keeps its trailing newline; use `line.rstrip("\\n")` to drop it."""


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="assistant-shots-"))
    os.environ["ASSISTANT_HOME"] = str(home)
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from assistant.conversations.storage import Store
    from assistant.settings import Settings
    from assistant.ui.controllers import Controllers
    from assistant.ui.main_window import MainWindow
    from tests import fake_engine
    from tests.benchmarks.qt_loop import spin
    from tests.tinymodel import THINKING_TEMPLATE, write_tiny_model
    from tests.ui.helpers import dark_palette

    fake_engine.use_fake_engine_here()
    os.environ[fake_engine.REPLY_ENV] = REPLY
    os.environ[fake_engine.THOUGHT_ENV] = THOUGHT
    os.environ[fake_engine.DELAY_ENV] = "0.03"
    models = home / "models"
    models.mkdir(parents=True)
    write_tiny_model(
        models / "qwen3-4b-instruct-q4_k_m.gguf", chat_template=THINKING_TEMPLATE, name="Qwen3"
    )
    app = QApplication([sys.argv[0]])
    app.setStyle("Fusion")
    settings = Settings(default_model="qwen3-4b-instruct-q4_k_m.gguf", max_tokens=400)
    settings.save()
    controllers = Controllers(Store(), settings)
    window = MainWindow(controllers)
    window.resize(980, 700)
    window.show()
    controllers.start()
    spin(lambda: controllers.models.loaded is not None and not controllers.models.is_loading)
    done: list[object] = []
    controllers.session.reply_finished.connect(done.append)
    controllers.session.send(QUESTION)
    spin(lambda: bool(done))
    window.chat_view.toggle_thought(done[0].id)  # type: ignore[attr-defined]
    window.chat_view.verticalScrollBar().setValue(0)

    def shoot(name: str) -> None:
        spin(lambda: window.chat_view._highlighter.pending == 0, timeout=10)
        app.processEvents()
        path = OUT / name
        window.grab().toImage().save(str(path), "PNG", 0)  # 0: the smallest file
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")

    shoot("chat-light.png")
    app.setPalette(dark_palette())
    spin(lambda: window.chat_view.palette().color(QPalette.ColorRole.Base).lightness() < 128)
    window.chat_view.verticalScrollBar().setValue(0)
    shoot("chat-dark.png")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
