"""A small dialog for the settings that shape replies, the CPU threads, the Local API and the
remote engines."""

from __future__ import annotations

import dataclasses
import json
import os

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from assistant.hardware import machine
from assistant.settings import Settings
from assistant.ui.engines_settings import EnginesEditor

# Ports other local LLM apps use by default: Ollama, LM Studio, Jan, llama-server, GPT4All.
TAKEN_PORTS = {
    11434: "Ollama",
    1234: "LM Studio",
    1337: "Jan",
    8080: "llama-server",
    4891: "GPT4All",
}


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self._mcp: dict = dict(settings.mcp_servers)
        self.setWindowTitle("Settings")
        self._settings = settings
        self.system_prompt = QPlainTextEdit(settings.system_prompt)
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setMaximumHeight(120)
        self.n_ctx = QSpinBox()
        self.n_ctx.setAccessibleName("Context size")
        self.n_ctx.setRange(256, 262_144)
        self.n_ctx.setSingleStep(512)
        self.n_ctx.setSuffix(" tokens")
        self.n_ctx.setValue(settings.n_ctx)
        self.n_ctx.setToolTip(
            "How much of the conversation the model can see. Changing it reloads the model."
        )
        self.max_tokens = QSpinBox()
        self.max_tokens.setAccessibleName("Maximum reply length")
        self.max_tokens.setRange(1, 131_072)
        self.max_tokens.setSuffix(" tokens")
        self.max_tokens.setValue(settings.max_tokens)
        self.temperature = QDoubleSpinBox()
        self.temperature.setAccessibleName("Temperature")
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setDecimals(2)
        self.temperature.setValue(settings.temperature)
        self.temperature.setToolTip("Lower is more predictable, higher more varied.")
        self.threads = QSpinBox()
        self.threads.setAccessibleName("CPU threads")
        self.threads.setRange(0, max(64, (os.cpu_count() or 1) * 2))
        self.threads.setSpecialValueText(f"Automatic ({machine.math_cores()}, one per core)")
        self.threads.setValue(settings.threads)
        self.threads.setToolTip(
            "Threads llama.cpp uses on the CPU. Changing it restarts the engine."
        )

        # The Local API: other apps on this machine can use the engine.
        self.local_api = QCheckBox("Let other apps on this computer use the engine")
        self.local_api.setAccessibleName("Local API")
        self.local_api.setChecked(settings.local_api)
        self.api_port = QSpinBox()
        self.api_port.setAccessibleName("Local API port")
        self.api_port.setRange(1024, 65535)
        self.api_port.setValue(settings.api_port)
        self._key = settings.api_key or ""
        self.api_key = QLineEdit(self._key)
        self.api_key.setAccessibleName("Local API key")
        self.api_key.setReadOnly(True)
        self.api_key.setPlaceholderText("generated when you turn the Local API on")
        self.copy_key = QPushButton("Copy")
        self.copy_key.setAccessibleName("Copy the API key")
        self.copy_key.clicked.connect(self._copy_key)
        key_row = QHBoxLayout()
        key_row.addWidget(self.api_key, 1)
        key_row.addWidget(self.copy_key)
        self.slots = QSpinBox()
        self.slots.setAccessibleName("Parallel requests")
        self.slots.setRange(0, 256)
        self.slots.setSpecialValueText("Automatic (as many as memory allows, up to 128)")
        self.slots.setValue(settings.slots)
        self.slots.setToolTip(
            "How many requests the engine serves at once while other apps use it; more wait "
            "in a queue. Each needs its own context in memory. The app alone uses one."
        )
        self.base_url = QLabel()
        self.base_url.setAccessibleName("Local API base URL")
        self.base_url.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.port_warning = QLabel()
        self.port_warning.setWordWrap(True)
        self.local_api.toggled.connect(self._update_api)
        self.api_port.valueChanged.connect(self._update_api)

        form = QFormLayout(self)
        form.addRow("System prompt:", self.system_prompt)
        form.addRow("Context size:", self.n_ctx)
        form.addRow("Maximum reply length:", self.max_tokens)
        form.addRow("Temperature:", self.temperature)
        form.addRow("CPU threads:", self.threads)
        form.addRow("Local API:", self.local_api)
        form.addRow("Port:", self.api_port)
        form.addRow("API key:", key_row)
        form.addRow("Parallel requests:", self.slots)
        form.addRow("Base URL:", self.base_url)
        form.addRow("", self.port_warning)
        self.engines = EnginesEditor(settings)
        form.addRow("Remote engines:", self.engines)
        # Tool servers, in the JSON other apps write ("mcpServers"): paste yours.
        self.mcp_servers = QPlainTextEdit()
        self.mcp_servers.setAccessibleName("Tool servers (MCP)")
        self.mcp_servers.setPlaceholderText(
            '{"mcpServers": {"memory": {"command": "npx", "args": ["-y", '
            '"@modelcontextprotocol/server-memory"]}}}'
        )
        self.mcp_servers.setToolTip(
            "MCP servers whose tools chats may call (the Tools button above a chat), as Claude "
            "Desktop, LM Studio and Jan write them. Each runs as a program of yours; you approve "
            "every call."
        )
        if settings.mcp_servers:
            self.mcp_servers.setPlainText(
                json.dumps({"mcpServers": settings.mcp_servers}, indent=2, ensure_ascii=False)
            )
        self.mcp_error = QLabel()
        self.mcp_error.setWordWrap(True)
        self.mcp_error.hide()
        form.addRow("Tool servers (MCP):", self.mcp_servers)
        form.addRow("", self.mcp_error)
        self._update_api()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def accept(self) -> None:
        if not self._read_mcp_servers():
            return
        if self.engines.add_typed():  # an engine typed in but not added is not dropped
            super().accept()

    def _read_mcp_servers(self) -> bool:
        """Whether the tool servers' JSON is usable; if not, says why and keeps the dialog."""
        from assistant.tools.mcp_servers import ConfigError, parse_config

        text = self.mcp_servers.toPlainText().strip()
        try:
            servers = parse_config(text) if text else []
        except ConfigError as exc:
            self.mcp_error.setText(f"Tool servers: {exc}")
            self.mcp_error.show()
            return False
        data = json.loads(text) if text else {}
        self._mcp = data.get("mcpServers", data) if servers else {}
        self.mcp_error.hide()
        return True

    def _update_api(self) -> None:
        on = self.local_api.isChecked()
        if on and not self._key:
            self._key = Settings().ensure_api_key()
            self.api_key.setText(self._key)
        for widget in (self.api_port, self.api_key, self.copy_key, self.slots):
            widget.setEnabled(on)
        port = self.api_port.value()
        self.base_url.setText(f"http://127.0.0.1:{port}/v1" if on else "(off)")
        other = TAKEN_PORTS.get(port)
        self.port_warning.setText(f"{port} is {other}'s default port." if on and other else "")
        self.port_warning.setVisible(bool(self.port_warning.text()))

    def _copy_key(self) -> None:
        QGuiApplication.clipboard().setText(self._key)

    def result_settings(self) -> Settings:
        """A copy of the settings with the dialog's values."""
        return dataclasses.replace(
            self._settings,
            system_prompt=self.system_prompt.toPlainText().strip(),
            n_ctx=self.n_ctx.value(),
            max_tokens=self.max_tokens.value(),
            temperature=round(self.temperature.value(), 2),
            threads=self.threads.value(),
            local_api=self.local_api.isChecked(),
            api_port=self.api_port.value(),
            api_key=self._key or None,
            slots=self.slots.value(),
            engines=self.engines.engines(),
            local_only=self.engines.is_local_only(),
            mcp_servers=dict(self._mcp),
            extra=dict(self._settings.extra),
        )
