"""Privacy you can check: owner-only files, deletion that deletes, no message text or key in
any log, and no socket but loopback, in the CLI and its engine process."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import paths
from assistant.chat import turn
from assistant.conversations.storage import Store
from tests.conftest import install_model
from tests.tinymodel import CHATML_TEMPLATE, write_tiny_model

AUDIT_DIR = Path(__file__).with_name("audit")
posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and umask")


def run(*args: str, umask: int | None = None, env: dict[str, str] | None = None, **kw):
    def preexec() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
        preexec_fn=preexec if umask is not None else None,
        **kw,
    )


@pytest.fixture
def tiny(tmp_path: Path, assistant_home: Path) -> Path:
    model = write_tiny_model(tmp_path / "tiny-private.gguf", chat_template=CHATML_TEMPLATE)
    return install_model(model, assistant_home)


def bytes_of_folder(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def holders(folder: Path, word: str) -> list[str]:
    needle = word.encode()
    return sorted(
        str(p.relative_to(folder)) for p, data in bytes_of_folder(folder).items() if needle in data
    )


# -- deletion -------------------------------------------------------------------------------------


def test_a_deleted_conversation_leaves_no_byte_behind(assistant_home: Path) -> None:
    with Store() as store:
        keep = store.create_conversation("Groceries")
        store.add_message(keep.id, "user", "milk and bread for the week")
        gone = store.create_conversation("About quixotrumble")
        for i in range(30):  # enough text for the index to hold several segments
            store.add_message(gone.id, "user", f"tell me about quixotrumble number {i}")
            reply = store.start_reply(gone.id, "m.gguf")
            store.checkpoint_reply(reply.id, "the quixotrumble is")
            store.finish_reply(reply.id, f"the quixotrumble {i} is a secret", "stop")
        state = paths.kv_state_path(gone.id)
        state.write_bytes(b"tokens of quixotrumble")
        assert holders(assistant_home, "quixotrumble")  # it was there
        turn.delete_conversation(store, gone.id)
        assert holders(assistant_home, "quixotrumble") == []
        assert not state.exists()
        # The rest is intact and still found.
        assert [h.conversation_id for h in store.search("bread")] == [keep.id]
        assert store.integrity_check()


def test_a_deleted_chinese_conversation_leaves_no_trigram_behind(assistant_home: Path) -> None:
    # The trigram index holds every three characters of it: none may stay.
    with Store() as store:
        gone = store.create_conversation("秘密")
        for i in range(30):
            store.add_message(gone.id, "user", f"我的密码是鹦鹉螺号第{i}号")
        assert holders(assistant_home, "鹦鹉螺")
        turn.delete_conversation(store, gone.id)
        for piece in ("鹦鹉螺", "鹉螺号", "密码是"):
            assert holders(assistant_home, piece) == []
        assert store.integrity_check()


def test_text_edited_away_or_regenerated_leaves_no_byte_behind(assistant_home: Path) -> None:
    with Store() as store:
        c = store.create_conversation("Edits")
        first = store.add_message(c.id, "user", "my password is zanzibarquill")
        reply = store.start_reply(c.id, "m.gguf")
        store.finish_reply(reply.id, "noted: frobnicatewhistle", "stop")
        store.edit_message(first.id, "never mind")
        store.delete_messages_from(reply.id)  # regenerate: the old reply goes
        for word in ("zanzibarquill", "frobnicatewhistle"):
            assert holders(assistant_home, word) == []
        assert [h.message_id for h in store.search("mind")] == [first.id]


def test_a_big_history_finishes_the_purge_on_close(
    assistant_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.conversations import storage

    monkeypatch.setattr(storage, "PURGE_AT_ONCE_MAX_MESSAGES", -1)  # every history is "big"
    store = Store()
    gone = store.create_conversation("x")
    for i in range(10):
        store.add_message(gone.id, "user", f"wombatrix number {i}")
    store.delete_conversation(gone.id)  # instant: the index merge is deferred
    assert store._purge_pending
    store.close()
    assert holders(assistant_home, "wombatrix") == []


def test_delete_all_wipes_every_chat_and_vacuums(assistant_home: Path) -> None:
    with Store() as store:
        for word in ("flibbertine", "grompulous"):
            c = store.create_conversation(word)
            store.add_message(c.id, "user", f"a long message about {word} " * 20)
            paths.kv_state_path(c.id).write_bytes(word.encode())
        assert turn.delete_all_conversations(store) == 2
        assert store.conversations() == []
        assert holders(assistant_home, "flibbertine") == []
        assert holders(assistant_home, "grompulous") == []
        assert list(paths.kv_cache_dir().iterdir()) == []
        # VACUUM rewrote the file: no free pages are left to hold old bytes.
        assert store.db.conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert store.integrity_check()


def test_chats_rm_deletes_the_conversation_and_its_kv_cache(tiny: Path, assistant_home) -> None:
    result = run("chat", "--model", tiny.name, "-n", "5", "remember zanzibarquux please")
    assert result.returncode == 0, result.stderr
    state = assistant_home / "kv-cache" / "conversation-1.state"
    assert state.exists()
    removed = run("chats", "rm", "1")
    assert removed.returncode == 0, removed.stderr
    assert not state.exists()
    assert holders(assistant_home, "zanzibarquux") == []
    # --all and ids together, or neither, is a usage mistake, said in one line.
    neither = run("chats", "rm")
    assert neither.returncode == 1 and "--all" in neither.stderr


# -- files ----------------------------------------------------------------------------------------


@posix
def test_everything_created_is_owner_only_whatever_the_umask(
    tiny: Path, assistant_home: Path
) -> None:
    os.chmod(assistant_home, 0o755)  # as a umask of 022 would leave it
    result = run("chat", "--model", tiny.name, "-n", "5", "hello", umask=0o022)
    assert result.returncode == 0, result.stderr
    export = run("export", "1", "-o", str(assistant_home / "export.md"), umask=0o022)
    assert export.returncode == 0, export.stderr
    serve_key = run("chats", "--json", umask=0o022)  # another face, another log
    assert serve_key.returncode == 0
    seen = []
    assert stat.S_IMODE(assistant_home.stat().st_mode) == 0o700
    for path in assistant_home.rglob("*"):
        if path.parent.name == "models" or path.name == "models":
            continue  # models may stay readable: they are not private
        mode = stat.S_IMODE(path.stat().st_mode)
        seen.append(path.relative_to(assistant_home).as_posix())
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    for expected in (
        "assistant.db",
        "logs/cli.log",
        "logs/engine.log",
        "logs/engine-stderr.log",
        "kv-cache/conversation-1.state",
        "kv-cache/conversation-1.state.json",
        "export.md",
    ):
        assert expected in seen, (expected, seen)


# -- logs -----------------------------------------------------------------------------------------


def test_logs_hold_no_message_text_and_no_key(
    tiny: Path, assistant_home: Path, tmp_path: Path
) -> None:
    import openai

    from assistant.clients.supervisor import Supervisor

    env = {"ASSISTANT_LOG_LEVEL": "DEBUG"}
    result = run("-v", "chat", "--model", tiny.name, "-n", "8", "my secret is plumbagoose", env=env)
    assert result.returncode == 0, result.stderr
    reply = Store(recover=False).messages(1)[-1].content
    assert reply
    sup = Supervisor(env={**os.environ, **env}, announce=False)
    try:
        sup.start().load(tiny.name, n_ctx=1024, n_gpu_layers=0)
        client = openai.OpenAI(base_url=sup.url + "/v1", api_key=sup.api_key, max_retries=0)
        api = client.chat.completions.create(
            model=tiny.name,
            messages=[{"role": "user", "content": "the api secret is snorkelwhip"}],
            max_tokens=8,
        )
        api_reply = api.choices[0].message.content or ""
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                base_url=sup.url + "/v1", api_key="wrong-key-ottermint", max_retries=0
            ).models.list()
    finally:
        sup.stop()
    logs = assistant_home / "logs"
    text = "\n".join(p.read_text(errors="replace") for p in logs.iterdir())
    assert "DEBUG" in text  # the engine logged at DEBUG too
    for secret in ("plumbagoose", "snorkelwhip", sup.api_key, "ottermint"):
        assert secret not in text, secret
    for piece in (reply, api_reply):
        if len(piece.strip()) >= 12:  # short gibberish could match anything
            assert piece.strip() not in text


def test_old_logs_are_pruned(tmp_path: Path) -> None:
    from assistant import logs

    old = tmp_path / "cli.log.2"
    old.write_text("x")
    os.utime(old, (0, 0))
    fresh = tmp_path / "cli.log"
    fresh.write_text("y")
    logs.prune(tmp_path)
    assert not old.exists() and fresh.exists()


# -- network --------------------------------------------------------------------------------------


def audited(log: Path) -> list[tuple[str, object]]:
    events = []
    for line in log.read_text().splitlines():
        _pid, event, target = line.split(" ", 2)
        events.append((event, ast.literal_eval(target)))
    return events


def is_loopback(event: str, target: object) -> bool:
    if isinstance(target, str):
        return True  # a Unix socket path: local by definition
    assert isinstance(target, tuple)
    host = target[0]
    if isinstance(host, bytes):
        host = host.decode()
    return host in ("127.0.0.1", "localhost", "::1") or str(host).startswith("127.")


def test_assistant_chat_opens_no_socket_but_loopback(
    tiny: Path, assistant_home: Path, tmp_path: Path
) -> None:
    log = tmp_path / "sockets.log"
    env = {
        "ASSISTANT_TEST_SOCKET_AUDIT": str(log),
        "PYTHONPATH": os.pathsep.join([str(AUDIT_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    result = run("chat", "--model", tiny.name, "-n", "5", "hello there", env=env)
    assert result.returncode == 0, result.stderr
    events = audited(log)
    pids = {line.split(" ", 1)[0] for line in log.read_text().splitlines()}
    assert len(pids) >= 2  # the CLI and its engine process were both audited
    assert any(e == "socket.connect" for e, _ in events)
    assert any(e == "socket.bind" for e, _ in events)
    foreign = [(e, t) for e, t in events if not is_loopback(e, t)]
    assert foreign == []
