"""The side panel of the open chat's own generation settings: a preset, then each value.

A view: it shows the ChatSettings the session sends (over the app's defaults) and emits the
whole ChatSettings whenever the user changes one value; the session saves it with the chat.
"""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from assistant.chat.settings import PRESETS, ChatSettings
from assistant.settings import Settings

CUSTOM = "Custom"


class ChatSettingsPanel(QWidget):
    """Signals:
    settings_edited(object): the ChatSettings the user chose (every value set).
    """

    settings_edited = Signal(ChatSettings)

    def __init__(self, defaults: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName("Chat settings")
        self._defaults = defaults
        self._showing = False  # set while values are shown, not edited

        def double(lo: float, hi: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
            box = QDoubleSpinBox()
            box.setRange(lo, hi)
            box.setSingleStep(step)
            box.setDecimals(decimals)
            box.setKeyboardTracking(False)  # a value typed counts once it is entered
            box.valueChanged.connect(self._edited)
            return box

        def integer(lo: int, hi: int, step: int = 1) -> QSpinBox:
            box = QSpinBox()
            box.setRange(lo, hi)
            box.setSingleStep(step)
            box.setGroupSeparatorShown(True)
            box.setKeyboardTracking(False)
            box.valueChanged.connect(self._edited)
            return box

        self.preset = QComboBox()
        self.preset.setAccessibleName("Preset")
        self.preset.addItems([*PRESETS, CUSTOM])
        self.preset.currentTextChanged.connect(self._preset_chosen)
        self.temperature = double(0.0, 2.0, 0.05)
        self.top_p = double(0.0, 1.0, 0.01)
        self.top_k = integer(0, 1000)
        self.min_p = double(0.0, 1.0, 0.01)
        self.repeat_penalty = double(0.0, 2.0, 0.01)
        self.max_tokens = integer(1, 131_072, 64)
        self.n_ctx = integer(256, 1_048_576, 1024)
        self.seed = integer(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")  # -1: a new seed for every reply
        for box in (self.max_tokens, self.n_ctx):
            box.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.reset_button = QPushButton("Use the defaults")
        self.reset_button.setToolTip("Follow the values in Settings again")
        self.reset_button.clicked.connect(lambda: self.settings_edited.emit(ChatSettings()))

        form = QFormLayout()
        rows: tuple[tuple[str, QWidget, str, str], ...] = (
            ("Preset", self.preset, "Preset", "Starting points for the sampling values"),
            ("Temperature", self.temperature, "Temperature", "Higher: more varied wording"),
            ("Top-p", self.top_p, "Top p", "Keep the likeliest tokens up to this probability"),
            ("Top-k", self.top_k, "Top k", "Keep this many likeliest tokens (0: all)"),
            ("Min-p", self.min_p, "Min p", "Drop tokens this much less likely than the best"),
            ("Repeat penalty", self.repeat_penalty, "Repeat penalty", "Above 1: repeat less"),
            ("Max tokens", self.max_tokens, "Max tokens", "The longest reply"),
            ("Context length", self.n_ctx, "Context length", "Tokens the model keeps in mind"),
            ("Seed", self.seed, "Seed", "The same seed and settings give the same reply"),
        )
        for label, widget, name, tip in rows:
            widget.setAccessibleName(name)
            widget.setToolTip(tip)
            form.addRow(label, widget)
        title = QLabel("<b>This chat</b>")
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addWidget(self.reset_button)
        layout.addStretch(1)
        self.show_settings(ChatSettings())

    @Slot(object)
    def show_settings(self, chosen: ChatSettings) -> None:
        """Show what this chat sends: its own values over the app's defaults."""
        params = chosen.params(self._defaults)
        self._showing = True
        try:
            self.temperature.setValue(params.temperature)
            self.top_p.setValue(params.top_p)
            self.top_k.setValue(params.top_k)
            self.min_p.setValue(params.min_p)
            self.repeat_penalty.setValue(params.repeat_penalty)
            self.max_tokens.setValue(params.max_tokens)
            self.n_ctx.setValue(chosen.context_length(self._defaults))
            self.seed.setValue(-1 if params.seed is None else params.seed)
            self.preset.setCurrentText(self.current().preset_name() or CUSTOM)
        finally:
            self._showing = False

    def current(self) -> ChatSettings:
        """The values shown, every one set."""
        seed = self.seed.value()
        return ChatSettings(
            temperature=round(self.temperature.value(), 2),
            top_p=round(self.top_p.value(), 2),
            top_k=self.top_k.value(),
            min_p=round(self.min_p.value(), 2),
            repeat_penalty=round(self.repeat_penalty.value(), 2),
            max_tokens=self.max_tokens.value(),
            n_ctx=self.n_ctx.value(),
            seed=None if seed < 0 else seed,
        )

    @Slot()
    def _edited(self, *_: object) -> None:
        if self._showing:
            return
        chosen = self.current()
        self._showing = True
        try:
            self.preset.setCurrentText(chosen.preset_name() or CUSTOM)
        finally:
            self._showing = False
        self.settings_edited.emit(chosen)

    @Slot(str)
    def _preset_chosen(self, name: str) -> None:
        if self._showing or name not in PRESETS:
            return
        chosen = self.current().with_preset(name)
        self.show_settings(chosen)
        self.settings_edited.emit(chosen)
