"""A conversation's own generation settings: over the defaults, presets, saved with the chat."""

from __future__ import annotations

import pytest

from assistant.chat.settings import PRESETS, ChatSettings
from assistant.conversations.storage import Store
from assistant.settings import Settings


def test_a_chat_s_choices_go_over_the_defaults() -> None:
    defaults = Settings(temperature=0.6, top_p=0.9, max_tokens=300)
    assert ChatSettings().params(defaults).temperature == 0.6
    params = ChatSettings(temperature=1.2, top_k=7, seed=42, max_tokens=50).params(defaults)
    assert (params.temperature, params.top_p, params.top_k, params.seed) == (1.2, 0.9, 7, 42)
    assert params.max_tokens == 50
    assert ChatSettings().context_length(Settings(n_ctx=8192)) == 8192
    assert ChatSettings(n_ctx=2048).context_length(Settings(n_ctx=8192)) == 2048


def test_a_preset_sets_sampling_and_keeps_length_context_and_seed() -> None:
    mine = ChatSettings(temperature=0.3, max_tokens=99, n_ctx=1024, seed=5)
    creative = mine.with_preset("Creative")
    assert creative.temperature == PRESETS["Creative"].temperature
    assert (creative.max_tokens, creative.n_ctx, creative.seed) == (99, 1024, 5)
    assert creative.preset_name() == "Creative" and mine.preset_name() is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ChatSettings()),
        ("", ChatSettings()),
        ("not json", ChatSettings()),
        ("[1, 2]", ChatSettings()),
        ('{"temperature": 0.5, "top_k": 12.0, "seed": true, "colour": "red"}',
         ChatSettings(temperature=0.5, top_k=12)),
    ],
)  # fmt: skip
def test_stored_settings_are_read_leniently(text: str | None, expected: ChatSettings) -> None:
    assert ChatSettings.from_json(text) == expected


def test_saved_with_the_conversation(assistant_home) -> None:
    chosen = ChatSettings(temperature=0.9, max_tokens=64, n_ctx=4096, seed=3)
    with Store() as store:
        conversation = store.create_conversation("Tuned", settings=chosen.to_json())
        assert ChatSettings.from_json(store.conversation(conversation.id).settings) == chosen
        store.set_conversation_settings(conversation.id, None)
        assert store.conversation(conversation.id).settings is None
    assert ChatSettings().to_json() is None
    assert isinstance(ChatSettings.from_json(chosen.to_json()).top_k, type(None))
    assert isinstance(ChatSettings.from_json(chosen.to_json()).max_tokens, int)


def test_the_tools_switch_and_documents_are_not_sampling() -> None:
    params = ChatSettings(temperature=0.3, tools=True, documents=("Notes",)).params(Settings())
    assert params.temperature == 0.3
    assert params.tools is None and params.grammar is None  # the engine's own fields
