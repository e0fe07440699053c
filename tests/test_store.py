"""The conversation history: durable, migrated, and never the reason a chat stops."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from coolfusion_local.tui import store as store_module
from coolfusion_local.locations import data_dir
from coolfusion_local.tui.store import DB_FILENAME, ConversationMissing, Store, StoredMessage, StoredSegment


def answer(text="Paris is the capital.", **extra) -> StoredMessage:
    segments = [
        StoredSegment(0, "Paris ", "qwen", "scored", ("qwen",), {"qwen": "Paris ", "smol": "The "},
                      {"qwen": {"qwen": 0.5, "smol": 1.2}}),
        StoredSegment(1, "is the capital.", "smol", "agreed", ("qwen", "smol")),
    ]
    return StoredMessage("assistant", text, mode="cool", stop_reason="eos",
                         stats={"tokens_per_second": 9.5}, segments=segments, **extra)


def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COOLFUSION_DATA_DIR", str(tmp_path / "data"))
    assert data_dir() == tmp_path / "data"
    store = Store.open_default()
    assert (tmp_path / "data" / DB_FILENAME).exists()
    store.close()


def test_messages_and_segments_survive_reopening(tmp_path):
    path = tmp_path / DB_FILENAME
    store = Store(path)
    assert store.persistent and store.take_notices() == []
    cid = store.create_conversation("What is the capital of France?")
    store.add_message(cid, StoredMessage("user", "What is the capital of France?"))
    store.add_message(cid, answer())
    store.close()

    again = Store(path)
    [summary] = again.list_conversations()
    assert summary.title == "What is the capital of France?" and summary.message_count == 2
    user, reply = again.messages(cid)
    assert (user.role, user.content) == ("user", "What is the capital of France?")
    assert reply.stop_reason == "eos" and reply.stats == {"tokens_per_second": 9.5}
    assert [(s.text, s.winner) for s in reply.segments] == [("Paris ", "qwen"), ("is the capital.", "smol")]
    assert reply.segments[0].candidates == {"qwen": "Paris ", "smol": "The "}
    assert reply.segments[0].scores == {"qwen": {"qwen": 0.5, "smol": 1.2}}
    assert reply.segments[1].proposers == ("qwen", "smol")


def test_schema_version_and_wal(tmp_path):
    path = tmp_path / DB_FILENAME
    Store(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(store_module.MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_new_migration_upgrades_an_old_file_and_keeps_its_data(tmp_path, monkeypatch):
    path = tmp_path / DB_FILENAME
    store = Store(path)
    cid = store.create_conversation("old")
    store.add_message(cid, StoredMessage("user", "kept"))
    store.close()

    def v2(conn):
        conn.execute("ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, v2])
    upgraded = Store(path)
    assert upgraded.persistent
    assert [m.content for m in upgraded.messages(cid)] == ["kept"]
    assert upgraded._conn.execute("PRAGMA user_version").fetchone()[0] == len(store_module.MIGRATIONS)
    assert upgraded._conn.execute("SELECT pinned FROM conversations").fetchone()[0] == 0
    upgraded.close()


def test_a_file_from_a_newer_version_is_left_alone(tmp_path):
    path = tmp_path / DB_FILENAME
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    store = Store(path)
    assert not store.persistent
    [notice] = store.take_notices()
    assert "newer coolfusion-local" in notice
    store.create_conversation("still works")  # in memory
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 99


def test_a_corrupt_file_is_moved_aside_not_deleted(tmp_path):
    path = tmp_path / DB_FILENAME
    path.write_bytes(b"this is not an sqlite database at all" * 100)
    store = Store(path)
    assert store.persistent
    [notice] = store.take_notices()
    assert "moved to" in notice and "damaged" in notice
    [moved] = list(tmp_path.glob(f"{DB_FILENAME}.corrupt-*"))
    assert moved.read_bytes().startswith(b"this is not an sqlite database")
    assert store.list_conversations() == []
    store.create_conversation("fresh start")
    store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the fresh file is private too


def test_an_unwritable_data_dir_keeps_history_in_memory(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    store = Store(blocker / DB_FILENAME)
    assert not store.persistent
    [notice] = store.take_notices()
    assert notice.startswith("History is kept in memory")
    cid = store.create_conversation("hello")
    store.add_message(cid, StoredMessage("user", "hello"))
    assert [m.content for m in store.messages(cid)] == ["hello"]


def test_a_full_disk_switches_to_memory_and_keeps_what_was_read(tmp_path):
    path = tmp_path / DB_FILENAME
    store = Store(path)
    cid = store.create_conversation("before")
    store.add_message(cid, StoredMessage("user", "saved before the disk filled"))
    # Simulate a full disk: SQLite may not grow the file past its current size.
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    big = StoredMessage("assistant", "x" * 200_000)
    store.add_message(cid, big)  # must not raise
    assert not store.persistent
    [notice] = store.take_notices()
    assert "continues in memory" in notice and "full" in notice
    assert [m.content[:5] for m in store.messages(cid)] == ["saved", "xxxxx"]
    store.close()
    # The file still holds everything finished before the disk filled.
    assert [m.content for m in Store(path).messages(cid)] == ["saved before the disk filled"]


def test_rename_delete_clear_and_export(tmp_path):
    store = Store(tmp_path / DB_FILENAME)
    first = store.create_conversation("first")
    second = store.create_conversation("second")
    store.add_message(first, StoredMessage("user", "Name a colour."))
    store.add_message(first, answer("Blue.", ))
    stopped = StoredMessage("assistant", "Gre", stop_reason="stopped")
    store.add_message(first, stopped)
    store.rename_conversation(first, "  Colours\nand more ")
    assert store.conversation_title(first) == "Colours and more"

    markdown = store.export_markdown(first)
    assert markdown.startswith("# Colours and more\n")
    assert "## You (" in markdown and "Name a colour." in markdown
    assert "mode cool" in markdown and "Blue." in markdown
    assert "*(stopped before the end)*" in markdown

    store.clear_conversation(first)
    assert store.messages(first) == []
    store.delete_conversation(second)
    assert [c.id for c in store.list_conversations()] == [first]


def test_most_recently_used_conversation_is_listed_first(tmp_path):
    store = Store(tmp_path / DB_FILENAME)
    a = store.create_conversation("a")
    b = store.create_conversation("b")
    store.add_message(a, StoredMessage("user", "bump"))
    assert [c.title for c in store.list_conversations()][0] == "a"
    assert {c.id for c in store.list_conversations()} == {a, b}


def test_two_stores_on_one_file(tmp_path):
    path = tmp_path / DB_FILENAME
    one, two = Store(path), Store(path)
    cid = one.create_conversation("shared")
    for i in range(20):
        (one if i % 2 else two).add_message(cid, StoredMessage("user", f"m{i}"))
    assert [m.content for m in one.messages(cid)] == [f"m{i}" for i in range(20)]
    assert one.persistent and two.persistent


def test_a_killed_process_loses_no_finished_message(tmp_path):
    """kill -9 right after a message was added: the message is on disk."""
    path = tmp_path / DB_FILENAME
    script = textwrap.dedent(
        f"""
        import os, signal
        from coolfusion_local.tui.store import Store, StoredMessage
        store = Store({str(path)!r})
        cid = store.create_conversation("crash")
        store.add_message(cid, StoredMessage("user", "finished before the crash"))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    assert result.returncode == -9
    store = Store(path)
    [summary] = store.list_conversations()
    assert [m.content for m in store.messages(summary.id)] == ["finished before the crash"]


# --------------------------------------------------------------------------- ids, deletion, locks, privacy


def test_a_deleted_conversation_s_id_is_never_given_again(tmp_path):
    store = Store(tmp_path / DB_FILENAME)
    first = store.create_conversation("first")
    newest = store.create_conversation("newest")
    store.add_message(newest, StoredMessage("user", "m"))
    store.delete_conversation(newest)
    assert store.create_conversation("after") > newest
    store.close()
    assert Store(tmp_path / DB_FILENAME).create_conversation("after a restart") > newest > first


def test_two_windows_never_mix_conversations(tmp_path):
    """Window A shows a chat that window B deletes; B starts a new chat; A's next message is refused."""
    path = tmp_path / DB_FILENAME
    window_a, window_b = Store(path), Store(path)
    shown_in_a = window_a.create_conversation("shown in A")
    window_a.add_message(shown_in_a, StoredMessage("user", "from A"))
    window_b.delete_conversation(shown_in_a)
    new_in_b = window_b.create_conversation("new in B")
    window_b.add_message(new_in_b, StoredMessage("user", "from B"))
    with pytest.raises(ConversationMissing, match="deleted"):
        window_a.add_message(shown_in_a, StoredMessage("assistant", "A's answer"))
    assert [m.content for m in window_b.messages(new_in_b)] == ["from B"]
    assert [c.title for c in window_b.list_conversations()] == ["new in B"]  # not re-created
    assert window_a.persistent


def _version_1_file(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    store_module.MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO conversations VALUES (1, 'kept', 1.0, 1.0), (2, 'newest', 2.0, 2.0)")
    conn.execute("INSERT INTO messages(id, conversation_id, role, content, created_at)"
                 " VALUES (1, 1, 'user', 'q', 1.0), (2, 1, 'assistant', 'a', 1.0), (3, 2, 'user', 'n', 2.0)")
    conn.execute("INSERT INTO segments VALUES (2, 0, 'a', 'qwen', 'agreed', NULL)")
    conn.execute("DELETE FROM conversations WHERE id = 2")  # no cascade here: foreign keys are off
    conn.execute("DELETE FROM messages WHERE id = 3")
    conn.close()


def test_a_version_1_history_is_migrated_with_every_row_and_ids_stop_being_reused(tmp_path):
    path = tmp_path / DB_FILENAME
    _version_1_file(path)
    store = Store(path)
    assert store.persistent and store.take_notices() == []
    [message_q, message_a] = store.messages(1)
    assert (message_q.content, message_a.content, message_a.segments[0].winner) == ("q", "a", "qwen")
    assert store._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store._conn.execute("PRAGMA foreign_key_check").fetchall() == []
    newer = store.create_conversation("newer")
    store.delete_conversation(newer)
    assert store.create_conversation("newest now") > newer
    store.delete_conversation(1)  # the cascade still works after the rebuild
    assert store._conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0] == 0


def test_a_transient_lock_is_waited_out_not_a_reason_to_stop_saving(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 50)
    path = tmp_path / DB_FILENAME
    store = Store(path)
    cid = store.create_conversation("busy")
    other = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")  # another window's long write
    threading.Timer(0.3, other.execute, ("COMMIT",)).start()
    store.add_message(cid, StoredMessage("user", "saved once the lock passed"))
    assert store.persistent and store.take_notices() == []
    other.close()
    assert [m.content for m in Store(path).messages(cid)] == ["saved once the lock passed"]


def test_a_lock_that_does_not_pass_fails_one_write_and_keeps_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 20)
    monkeypatch.setattr(store_module, "BUSY_RETRY_PAUSES", (0.01,))
    path = tmp_path / DB_FILENAME
    store = Store(path)
    cid = store.create_conversation("busy")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store.add_message(cid, StoredMessage("user", "not this one"))
    other.execute("COMMIT")
    store.add_message(cid, StoredMessage("user", "but this one"))
    assert store.persistent
    assert [m.content for m in Store(path).messages(cid)] == ["but this one"]


def test_the_history_is_private_to_its_owner(tmp_path, monkeypatch):
    monkeypatch.setenv("COOLFUSION_DATA_DIR", str(tmp_path / "data"))
    old = os.umask(0o022)  # the usual default: files world-readable
    try:
        store = Store.open_default()
        cid = store.create_conversation("secret")
        store.add_message(cid, StoredMessage("user", "my medical question"))
    finally:
        os.umask(old)
    folder = tmp_path / "data"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in (DB_FILENAME, DB_FILENAME + "-wal", DB_FILENAME + "-shm"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    store.close()


def test_an_older_world_readable_history_is_made_private(tmp_path):
    path = tmp_path / DB_FILENAME
    Store(path).close()
    os.chmod(path, 0o644)
    Store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
