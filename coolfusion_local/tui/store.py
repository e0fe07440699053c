"""Conversation history in SQLite: every finished message, with who won each segment.

Design choices, and why:
- One file in the user data dir (`COOLFUSION_DATA_DIR` overrides it), WAL mode and a
  busy timeout, so two `coolfusion chat` windows can share it. A write that still finds
  the file locked is tried again a few times; a lock is never a reason to stop saving.
- Ids are never reused (AUTOINCREMENT): a window still showing a conversation deleted in
  another window can never write into a newer one that took its id; writing to a missing
  conversation is an error (`ConversationMissing`), never a silent re-creation.
- The file is created readable by its owner only (0600), in a 0700 folder: it holds
  what a person asked and was told.
- Each finished message is committed on its own (`synchronous=FULL`): killing the
  process loses at most the answer still being written, never a finished one.
- The schema is versioned with `PRAGMA user_version` and only ever migrated forward.
- The history must never stop the chat: a corrupt file is moved aside (renamed with a
  timestamp, never deleted) and a fresh one started; a read-only or full disk switches
  to an in-memory copy. Either way a one-line notice says so (`take_notices()`).

All methods must be called from one thread (the UI thread).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import locations
from ..files import PRIVATE_FILE, make_private_folder
from .line_breaks import hard_line_breaks

DB_FILENAME = "history.sqlite3"
BUSY_TIMEOUT_MS = 5000
# Pauses between tries of a write (or read) that found the database locked even after
# the busy timeout: the other window may be in a long checkpoint or a WAL recovery.
BUSY_RETRY_PAUSES = (0.1, 0.5)


class ConversationMissing(LookupError):
    """A message for a conversation that no longer exists (deleted, e.g. in another window)."""

    def __init__(self, conversation_id: int):
        super().__init__(
            f"this chat (#{conversation_id}) was deleted from the history, perhaps in another window"
        )
        self.conversation_id = conversation_id


# --------------------------------------------------------------------------- records


@dataclass
class StoredSegment:
    """One chosen segment of a fused answer, with what every model proposed for it."""

    index: int
    text: str
    winner: str
    decision: str = ""
    proposers: tuple[str, ...] = ()
    candidates: dict[str, str] = field(default_factory=dict)  # model -> proposed text
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # scorer -> proposer -> nll

    @classmethod
    def from_record(cls, record: dict) -> "StoredSegment":
        """From an event's `SegmentChosen.as_record()`: the part the chat keeps."""
        return cls(index=record["index"], text=record["text"], winner=record["winner"], decision=record["decision"],
                   proposers=tuple(record["proposers"]), candidates=record["candidates"], scores=record["scores"])

    def detail_json(self) -> str:
        return json.dumps(
            {"proposers": list(self.proposers), "candidates": self.candidates, "scores": self.scores}
        )

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "StoredSegment":
        detail = _loads(row["detail"]) or {}
        return cls(
            index=row["idx"],
            text=row["text"],
            winner=row["winner"],
            decision=row["decision"] or "",
            proposers=tuple(detail.get("proposers") or ()),
            candidates=dict(detail.get("candidates") or {}),
            scores={k: dict(v) for k, v in (detail.get("scores") or {}).items()},
        )


@dataclass
class StoredMessage:
    role: str  # "user" | "assistant" | "system"
    content: str
    mode: str | None = None  # the fusion mode that wrote an assistant message
    stop_reason: str | None = None
    error: str | None = None
    stats: dict | None = None  # GenerationStats.as_dict()
    segments: list[StoredSegment] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    id: int | None = None


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    title: str
    updated_at: float
    message_count: int


# --------------------------------------------------------------------------- schema

_V1 = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    mode TEXT,
    stop_reason TEXT,
    error TEXT,
    stats TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
CREATE TABLE segments (
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    winner TEXT NOT NULL,
    decision TEXT,
    detail TEXT,
    PRIMARY KEY (message_id, idx)
);
"""

# Version 2: ids never reused. A table's column cannot gain AUTOINCREMENT in place, so
# conversations and messages are rebuilt (with foreign keys off: see _migrate).
_V2 = """
CREATE TABLE conversations_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
INSERT INTO conversations_v2(id, title, created_at, updated_at)
    SELECT id, title, created_at, updated_at FROM conversations;
DROP TABLE conversations;
ALTER TABLE conversations_v2 RENAME TO conversations;
CREATE TABLE messages_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    mode TEXT,
    stop_reason TEXT,
    error TEXT,
    stats TEXT,
    created_at REAL NOT NULL
);
INSERT INTO messages_v2 SELECT id, conversation_id, role, content, mode, stop_reason, error, stats, created_at
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
"""

# Version 3: the arena's blind comparisons (arena/comparisons.py reads and writes them).
# Kept with the conversations: a comparison holds a conversation so far, and the file is
# private and migrated like the rest. Not tied to a conversation row: deleting a chat
# keeps the votes.
_V3 = """
CREATE TABLE comparisons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    source TEXT NOT NULL,
    pairing TEXT NOT NULL,
    system_a TEXT NOT NULL,
    system_b TEXT NOT NULL,
    context TEXT NOT NULL,
    prompt TEXT NOT NULL,
    settings TEXT NOT NULL,
    seed INTEGER,
    answer_a TEXT,
    answer_b TEXT,
    detail_a TEXT,
    detail_b TEXT,
    state TEXT NOT NULL,
    vote TEXT,
    voted_at REAL
);
CREATE INDEX comparisons_by_state ON comparisons(state, id);
"""

# MIGRATIONS[i] brings a database from user_version i to i + 1. Append, never edit.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    lambda conn: _run_script(conn, _V1),
    lambda conn: _run_script(conn, _V2),
    lambda conn: _run_script(conn, _V3),
]


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT our transaction first; run statement by statement.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _loads(text: str | None):
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


class _MovedAside(Exception):
    pass


# --------------------------------------------------------------------------- the store


class Store:
    """Conversation history. `Store(None)` keeps everything in memory."""

    def __init__(self, path: Path | str | None):
        path = Path(path) if path is not None else None
        self.path = path
        self._notices: list[str] = []
        # True only after a fall-back to memory that could not copy the rows: the
        # conversation on screen is then missing for that reason, not because it was deleted.
        self._rows_lost = False
        self._conn = self._open(path)

    @classmethod
    def open_default(cls) -> "Store":
        return cls(locations.data_dir() / DB_FILENAME)

    # ------------------------------------------------------------ status

    @property
    def persistent(self) -> bool:
        """False once the history is only kept in memory for this session."""
        return self._persistent

    def take_notices(self) -> list[str]:
        notices, self._notices = self._notices, []
        return notices

    def close(self) -> None:
        try:
            self._conn.close()
        except sqlite3.Error:
            pass

    # ------------------------------------------------------------ opening

    def _open(self, path: Path | None) -> sqlite3.Connection:
        self._persistent = False
        if path is None:
            return self._memory()
        for _attempt in range(2):
            try:
                make_private_folder(path.parent)
                _make_private(path)  # again after a damaged file was moved aside
            except OSError as error:
                return self._memory(f"cannot create {path} ({error.strerror or error})")
            try:
                conn = self._connect_file(path)
                self._persistent = True
                return conn
            except _MovedAside:
                continue  # a fresh, empty file now
            except sqlite3.Error as error:
                return self._memory(f"cannot open {path} ({error})")
        return self._memory(f"cannot open {path}")

    def _connect_file(self, path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
            except sqlite3.DatabaseError as error:
                if _is_corruption(error):
                    check = str(error)
                else:
                    raise
            if check != "ok":
                conn.close()
                self._move_aside(path, check)
                raise _MovedAside()
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            _patiently(lambda: self._migrate(conn, str(path)))
            return conn
        except BaseException:
            conn.close()
            raise

    def _memory(self, why: str | None = None) -> sqlite3.Connection:
        if why:
            self._notices.append(f"History is kept in memory for this session only: {why}.")
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.row_factory = sqlite3.Row
        self._migrate(conn, ":memory:")
        self._persistent = False
        return conn

    def _move_aside(self, path: Path, why: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        try:
            path.rename(target)
            for suffix in ("-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    side.rename(target.with_name(target.name + suffix))
        except OSError as error:
            raise sqlite3.OperationalError(
                f"it is damaged and could not be moved aside: {error.strerror or error}"
            ) from error
        first_line = why.splitlines()[0] if why else "damaged"
        self._notices.append(
            f"The history database was damaged ({first_line}); it was moved to {target} "
            "and a new one started."
        )

    @staticmethod
    def _migrate(conn: sqlite3.Connection, where: str) -> None:
        """Bring the schema up to date; leaves foreign keys on."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise sqlite3.OperationalError(
                f"it was written by a newer coolfusion-local (schema {version}); update coolfusion-local"
            )
        if version < len(MIGRATIONS):
            # Off outside the transaction (inside it the pragma does nothing): rebuilding a
            # table drops the old one, which with foreign keys on would cascade to its rows.
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Re-read inside the write lock: another instance may have migrated meanwhile.
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                for step in range(version, len(MIGRATIONS)):
                    MIGRATIONS[step](conn)
                    conn.execute(f"PRAGMA user_version = {step + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        conn.execute("PRAGMA foreign_keys = ON")

    # ------------------------------------------------------------ writing

    def _write(self, work: Callable[[sqlite3.Connection], object]):
        """Run `work` in one transaction; on a disk problem, continue in memory.

        A file still locked after a few tries is reported to the caller (this one
        message is not saved) but the session stays on disk: the lock will pass.
        """
        try:
            return _patiently(lambda: self._transaction(work))
        except sqlite3.IntegrityError:
            raise  # a bug in the caller, not the disk
        except sqlite3.DatabaseError as error:
            if not self._persistent or _is_busy(error):
                raise
            self._fall_back_to_memory(str(error))
            return self._transaction(work)

    def _transaction(self, work):
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
            conn.execute("COMMIT")
            return result
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    def _fall_back_to_memory(self, why: str) -> None:
        """Keep going in memory with everything read so far (disk full, read-only...)."""
        memory = sqlite3.connect(":memory:", isolation_level=None)
        memory.row_factory = sqlite3.Row
        try:
            self._conn.backup(memory)
        except sqlite3.Error:
            memory.close()
            memory = sqlite3.connect(":memory:", isolation_level=None)
            memory.row_factory = sqlite3.Row
            self._migrate(memory, ":memory:")
            self._rows_lost = True
        memory.execute("PRAGMA foreign_keys = ON")
        self.close()
        self._conn = memory
        self._persistent = False
        self._notices.append(
            f"Cannot write the history file ({why}); this session continues in memory "
            "and new messages will not be saved."
        )

    def write(self, work: Callable[[sqlite3.Connection], object]):
        """`work(conn)` in one transaction, with the same retries and fall-backs as messages
        (for tables kept beside the conversations: arena/comparisons.py)."""
        return self._write(work)

    def read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return self._read(sql, params)

    def create_conversation(self, title: str) -> int:
        now = time.time()
        title = _one_line(title) or "New chat"

        def work(conn):
            cursor = conn.execute(
                "INSERT INTO conversations(title, created_at, updated_at) VALUES (?, ?, ?)",
                (title, now, now),
            )
            return cursor.lastrowid

        return self._write(work)

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        title = _one_line(title) or "New chat"
        self._write(
            lambda conn: conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)
            )
        )

    def delete_conversation(self, conversation_id: int) -> None:
        self._write(lambda conn: conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)))

    def clear_conversation(self, conversation_id: int) -> None:
        self._write(
            lambda conn: conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
        )

    def add_message(self, conversation_id: int, message: StoredMessage, title: str = "New chat") -> int:
        """Commit one finished message (and its segments); returns its id.

        A conversation that no longer exists is `ConversationMissing`: deleted, most
        likely in another window. Only after a fall-back to an empty in-memory store
        (the rows could not be copied) is it made again, under `title`.
        """

        def work(conn):
            exists = conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if not exists:
                if not self._rows_lost:
                    raise ConversationMissing(conversation_id)
                conn.execute(
                    "INSERT INTO conversations(id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                    (conversation_id, _one_line(title) or "New chat", message.created_at, message.created_at),
                )
            cursor = conn.execute(
                "INSERT INTO messages(conversation_id, role, content, mode, stop_reason, error, stats,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    message.role,
                    message.content,
                    message.mode,
                    message.stop_reason,
                    message.error,
                    json.dumps(message.stats) if message.stats is not None else None,
                    message.created_at,
                ),
            )
            message_id = cursor.lastrowid
            conn.executemany(
                "INSERT INTO segments(message_id, idx, text, winner, decision, detail) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (message_id, seg.index, seg.text, seg.winner, seg.decision, seg.detail_json())
                    for seg in message.segments
                ],
            )
            conn.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), conversation_id)
            )
            return message_id

        message.id = self._write(work)
        return message.id

    # ------------------------------------------------------------ reading

    def list_conversations(self) -> list[ConversationSummary]:
        rows = self._read(
            "SELECT c.id, c.title, c.updated_at, COUNT(m.id) AS n FROM conversations c"
            " LEFT JOIN messages m ON m.conversation_id = c.id"
            " GROUP BY c.id ORDER BY c.updated_at DESC, c.id DESC"
        )
        return [ConversationSummary(r["id"], r["title"], r["updated_at"], r["n"]) for r in rows]

    def conversation_title(self, conversation_id: int) -> str | None:
        rows = self._read("SELECT title FROM conversations WHERE id = ?", (conversation_id,))
        return rows[0]["title"] if rows else None

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        rows = self._read(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        )
        segment_rows = self._read(
            "SELECT s.* FROM segments s JOIN messages m ON m.id = s.message_id"
            " WHERE m.conversation_id = ? ORDER BY s.message_id, s.idx",
            (conversation_id,),
        )
        by_message: dict[int, list[StoredSegment]] = {}
        for row in segment_rows:
            by_message.setdefault(row["message_id"], []).append(StoredSegment.from_row(row))
        return [
            StoredMessage(
                role=r["role"],
                content=r["content"],
                mode=r["mode"],
                stop_reason=r["stop_reason"],
                error=r["error"],
                stats=_loads(r["stats"]),
                segments=by_message.get(r["id"], []),
                created_at=r["created_at"],
                id=r["id"],
            )
            for r in rows
        ]

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        try:
            return _patiently(lambda: self._conn.execute(sql, params).fetchall())
        except sqlite3.DatabaseError as error:
            # Damage found after opening: keep the chat alive, the file stays as it is.
            if not self._persistent or _is_busy(error):
                raise
            self._fall_back_to_memory(str(error))
            return self._conn.execute(sql, params).fetchall()

    def export_markdown(self, conversation_id: int) -> str:
        """The conversation as a Markdown document a person would want to read."""
        title = self.conversation_title(conversation_id) or "Conversation"
        lines = [f"# {title}", ""]
        for message in self.messages(conversation_id):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(message.created_at))
            if message.role == "user":
                lines.append(f"## You ({when})")
            else:
                label = "Answer" if message.role == "assistant" else message.role.capitalize()
                note = f", mode {message.mode}" if message.mode else ""
                lines.append(f"## {label} ({when}{note})")
            lines += ["", hard_line_breaks(message.content.rstrip()), ""]
            if message.stop_reason == "stopped":
                lines += ["*(stopped before the end)*", ""]
            elif message.error:
                lines += [f"*(error: {message.error})*", ""]
        return "\n".join(lines).rstrip() + "\n"


def _is_busy(error: sqlite3.Error) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds the file for now."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error).lower() or "busy" in str(error).lower()


def _patiently(attempt: Callable[[], object]):
    """`attempt()`, tried again after short pauses while the database is busy."""
    for pause in BUSY_RETRY_PAUSES:
        try:
            return attempt()
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        time.sleep(pause)
    return attempt()


def _make_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would follow the umask);
    tighten one made by an older version. SQLite gives its -wal and -shm files the same mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            try:
                os.chmod(path, PRIVATE_FILE)
            except OSError:
                pass  # not ours to change (another user's file, a read-only disk)


def _is_corruption(error: sqlite3.DatabaseError) -> bool:
    text = str(error).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


def _one_line(text: str) -> str:
    return " ".join(text.split())[:80]
