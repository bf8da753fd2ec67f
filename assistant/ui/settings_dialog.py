"""A small dialog for the settings that shape replies."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QPlainTextEdit,
    QSpinBox,
    QWidget,
)

from assistant.settings import Settings


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
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
        form = QFormLayout(self)
        form.addRow("System prompt:", self.system_prompt)
        form.addRow("Context size:", self.n_ctx)
        form.addRow("Maximum reply length:", self.max_tokens)
        form.addRow("Temperature:", self.temperature)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def result_settings(self) -> Settings:
        """A copy of the settings with the dialog's values."""
        return dataclasses.replace(
            self._settings,
            system_prompt=self.system_prompt.toPlainText().strip(),
            n_ctx=self.n_ctx.value(),
            max_tokens=self.max_tokens.value(),
            temperature=round(self.temperature.value(), 2),
            extra=dict(self._settings.extra),
        )
