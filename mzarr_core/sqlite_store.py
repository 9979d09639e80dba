"""A Zarr v3 store that keeps every key as a row of one SQLite file: the single-file `.mzarr` container.

SQLite gives what a ZIP cannot: in-place updates of single chunks, atomic transactions (a kill -9 leaves the
old or the new state), and readers in other processes that keep reading between a writer's commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from urllib.request import pathname2url

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from .errors import MzarrDiskFullError, MzarrError, MzarrFormatError, MzarrReadOnlyError, MzarrStorageError

#: PRAGMA application_id of a .mzarr file: the ASCII bytes "MZAR", stored big-endian at file offset 68.
APPLICATION_ID = 0x4D5A4152
#: PRAGMA user_version: version of the container layout.
CONTAINER_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 30

# Primary SQLite result codes (the low byte of an extended code) that this module translates.
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 8, 10, 11, 13, 14, 26
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_NOMEM = 5, 6, 7


def is_sqlite_file(path: Path) -> bool:
    """True if the file starts with the SQLite 3 header."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_HEADER
    except OSError:
        return False


def cut_short(path: Path) -> tuple[int, int] | None:
    """(bytes on disk, bytes its SQLite header declares: page count x page size) when the file is shorter than its
    header says (an interrupted copy or download), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
        size = os.path.getsize(path)
    except OSError:
        return None
    if len(head) < 100 or head[:16] != SQLITE_HEADER or head[24:28] != head[92:96]:  # page count valid only then
        return None
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    declared = int.from_bytes(head[28:32], "big") * page_size
    return (size, declared) if 0 < size < declared else None


def has_mzarr_application_id(path: Path) -> bool:
    """True if the SQLite header carries the Mzarr application id (bytes 68-71 == b'MZAR')."""
    with open(path, "rb") as f:
        head = f.read(72)
    return len(head) == 72 and head[68:72] == APPLICATION_ID.to_bytes(4, "big")


def why_not_writable(path: Path) -> str | None:
    """Why the file at ``path`` (or a new file there) cannot be written, in words; None if it can.

    SQLite needs to write the file and to create ``NAME-journal`` beside it, so the folder must be writable too.
    """
    folder = path.parent
    with contextlib.suppress(OSError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"the file system holding {folder} is mounted read-only"
    if path.exists() and not os.access(path, os.W_OK):
        return f"you have no permission to write {path}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"you have no permission to create files in {folder} (SQLite writes its journal beside the file)"
    return None


def translate_sqlite_error(exc: sqlite3.Error, path: Path, doing: str) -> MzarrError:
    """An :class:`MzarrError` that says what happened to ``path`` while ``doing`` and what to do about it."""
    code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
    detail = f"{type(exc).__name__}: {exc}"
    if code == _SQLITE_FULL:
        return MzarrDiskFullError(
            f"{doing} {path} failed: the disk is full ({detail}). Nothing of this change was kept and the file is "
            "as it was; free some space and try again"
        )
    if code == _SQLITE_READONLY:
        reason = why_not_writable(path) or "SQLite opened it read-only"
        return MzarrReadOnlyError(f"{doing} {path} failed: the file cannot be written ({reason}; {detail})")
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return MzarrStorageError(
            f"{doing} {path} failed: another process has held the file locked for more than {BUSY_TIMEOUT_S} s "
            f"({detail}); nothing was changed: try again when it has finished"
        )
    damaged = ("malformed", "unsupported file format", "not a database", "file is not a database")
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or any(text in str(exc).lower() for text in damaged):
        if (cut := cut_short(path)) is not None:
            return MzarrFormatError(
                f"{doing} {path} failed: the file was cut short (an interrupted copy or download?): it holds "
                f"{cut[0]} of the {cut[1]} bytes its header declares. 'mzarr salvage {path} NEW.mzarr' saves what "
                "still reads (the rows left in its pages: the chunks they hold exactly), or restore it from a backup"
            )
        return MzarrFormatError(
            f"{doing} {path} failed: the SQLite container is damaged ({detail}); restore it from a backup, or save "
            f"what still reads with 'mzarr salvage {path} NEW.mzarr'"
        )
    if code == _SQLITE_NOMEM:
        return MzarrStorageError(f"{doing} {path} failed: out of memory ({detail}); nothing of this change was kept")
    if code == _SQLITE_CANTOPEN:
        unwritable = why_not_writable(path)
        return MzarrStorageError(f"{doing} {path} failed: the file cannot be opened ({unwritable or detail})")
    if code == _SQLITE_IOERR and "full" in str(exc).lower():
        return MzarrDiskFullError(f"{doing} {path} failed: the disk is full ({detail}); the file is as it was")
    return MzarrStorageError(
        f"{doing} {path} failed: {detail}. Nothing of this change was kept (the disk or the medium reported an "
        "error: check it, then try again)"
    )


_WAITER = "mzarr-wait-for-zarr-io"


def wait_for_zarr_io(timeout: float = 60.0) -> None:
    """Wait until the tasks on zarr's I/O event loop (other than this wait) have finished."""
    from zarr.core import sync as zarr_sync

    loop = zarr_sync.loop[0]
    if loop is None or loop.is_closed() or threading.current_thread() is zarr_sync.iothread[0]:
        return

    async def others_done() -> None:
        me = asyncio.current_task()
        if me is not None:
            me.set_name(_WAITER)
        # other waiters (two saves failing at once) wait for the same I/O, not for each other: no deadlock
        others = [t for t in asyncio.all_tasks() if t is not me and t.get_name() != _WAITER]
        if others:
            await asyncio.wait(others, timeout=timeout)

    with contextlib.suppress(Exception):
        zarr_sync.sync(others_done(), loop=loop)


def _slice(data: bytes, byte_range: ByteRequest | None) -> bytes:
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix :] if byte_range.suffix else b""
    raise TypeError(f"unexpected byte range {byte_range!r}")


class SqliteStore(Store):
    """Zarr store in one SQLite file: table ``zarr(key TEXT PRIMARY KEY, value BLOB)``.

    One connection serves the whole process (guarded by a lock), so writes made inside :meth:`transaction` are
    visible to reads made inside it (the pyramid update reads what it just wrote) and are committed together.
    A write transaction is all or nothing under every error: once any statement of it failed (a full disk, an
    I/O error, after which SQLite may already have rolled everything back and fallen back to autocommit), no
    further statement of it runs and it ends in a rollback.
    """

    supports_writes = True
    supports_deletes = True
    supports_listing = True
    supports_partial_writes = False

    def __init__(self, path: str | Path, *, read_only: bool = False, create: bool = False, fast_build: bool = False):
        super().__init__(read_only=read_only)
        self.path = Path(path)
        # Through a symlink, SQLite would look for the journal beside the link: always open the real file.
        self.real_path = Path(os.path.realpath(self.path))
        self._create = create
        self._fast_build = fast_build
        self._lock = threading.RLock()
        self._depth = 0
        self._writing = False  # the open transaction is a write transaction
        self._failed: MzarrError | None = None  # why the open write transaction must end in a rollback
        self._closed_for_good = False
        self._broken: str | None = None  # set when a rollback itself failed: the connection was dropped
        self._conn: sqlite3.Connection | None = None

    # -- connection ---------------------------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if self._broken:
            raise MzarrStorageError(self._broken)
        if self._closed_for_good:
            # Late writes of a failed save must not re-create the temporary file that was just removed.
            raise MzarrError(f"{self.path} has been closed; open it again with Mzarr(path)")
        with self._lock:
            if self._conn is not None:
                return self._conn
            try:
                conn = self._connect()
            except sqlite3.Error as exc:
                raise translate_sqlite_error(exc, self.path, "opening") from None
            self._conn = conn
            return conn

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            self._roll_back_hot_journal()
            uri = f"file:{pathname2url(str(self.real_path))}?mode=ro"  # quoted: '?'/'#' in names
            return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        conn = sqlite3.connect(self.real_path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        if self._create:
            conn.execute("PRAGMA page_size=4096")
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={CONTAINER_VERSION}")
            conn.execute("CREATE TABLE IF NOT EXISTS zarr (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        if self._fast_build:
            # A fresh temporary file being built: no journal needed, the final rename is the commit.
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("BEGIN")
        else:
            # The rollback journal, always: the image stays one file (no -wal/-shm that outlive a session),
            # files on read-only media stay readable, and a crash mid-write is rolled back on the next open.
            # Readers in other processes read between commits (a commit waits for them, they wait for it).
            with contextlib.suppress(sqlite3.OperationalError):
                conn.execute("PRAGMA journal_mode=DELETE")
        return conn

    def check_writable(self) -> None:
        """Raise :class:`MzarrReadOnlyError` naming the reason if this file cannot be written (read-only media,
        permissions, a folder where the journal cannot be created), by trying: an empty write transaction."""
        reason = why_not_writable(self.real_path)
        if reason is None:
            with self._lock:
                conn = self._connection()
                conn.execute("PRAGMA busy_timeout=0")  # a writer at work elsewhere proves nothing either way
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    (version,) = conn.execute("PRAGMA user_version").fetchone()
                    conn.execute(f"PRAGMA user_version={int(version)}")  # dirties page 1: needs the journal
                except sqlite3.Error as exc:
                    code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
                    if code not in (_SQLITE_BUSY, _SQLITE_LOCKED):
                        reason = f"SQLite cannot write it ({exc})"
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        if reason is not None:
            self.close()
            raise MzarrReadOnlyError(
                f"{self.path} cannot be opened for writing: {reason}. Open it read-only (mode 'r'), or copy it to "
                "a writable folder to edit it"
            )

    def _roll_back_hot_journal(self) -> None:
        """After a writer was killed mid-commit its journal is left beside the file; a read-only connection
        cannot roll it back, so open read-write once (where permitted) and let SQLite restore the old state."""
        journal = self.real_path.with_name(self.real_path.name + "-journal")
        if journal.exists() and journal.stat().st_size > 0:
            with contextlib.suppress(sqlite3.Error, OSError):
                conn = sqlite3.connect(self.real_path, timeout=BUSY_TIMEOUT_S)
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
                conn.close()

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            conn = self._connection()
            if self._writing and self._depth > 0:
                self._check_transaction_alive(conn)
            try:
                return conn.execute(sql, params).fetchall()
            except UnicodeDecodeError:  # sqlite3 failed to decode SQLite's own message: a damaged schema
                raise MzarrFormatError(
                    f"reading {self.path} failed: the SQLite container is damaged (its schema cannot be read); "
                    "restore it from a backup"
                ) from None
            except sqlite3.Error as exc:
                error = translate_sqlite_error(exc, self.path, "writing" if self._writing else "reading")
                if self._writing and self._depth > 0 and self._failed is None:
                    self._failed = error  # the rest of this transaction must not run, and it must roll back
                raise error from None

    def _check_transaction_alive(self, conn: sqlite3.Connection) -> None:
        """Inside a write transaction: refuse to run once it failed or SQLite rolled it back by itself (the
        statement would otherwise be committed alone, in autocommit mode, tearing the edit)."""
        if self._failed is not None:
            raise self._failed
        if not self._fast_build and not conn.in_transaction:
            self._failed = MzarrStorageError(
                f"writing {self.path} failed: SQLite ended the transaction after an error; nothing of this change "
                "was kept"
            )
            raise self._failed

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        """One atomic SQLite transaction around the block (nesting and other threads join it).

        ``write=True`` takes the write lock at once (BEGIN IMMEDIATE) and rolls everything back if a writer in it
        fails; ``write=False`` is a read snapshot: every chunk of one region read comes from one committed state.
        The lock is held only per statement: zarr performs the reads and writes on its own event-loop thread, on
        the same connection, so they join this transaction.
        """
        with self._lock:
            conn = self._connection()
            if self._depth == 0:
                if not self._fast_build:
                    try:
                        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    except sqlite3.Error as exc:
                        raise translate_sqlite_error(exc, self.path, "writing" if write else "reading") from None
                self._failed = None
                self._writing = write
            elif write and not self._writing:
                raise MzarrError("internal error: a write inside a read snapshot")  # never done by mzarr_core
            self._depth += 1
        ok = False
        try:
            yield
            ok = True
        finally:
            with self._lock:
                if self._writing and not ok and self._failed is None:
                    self._failed = MzarrStorageError(f"writing {self.path} was interrupted; nothing was kept")
                outermost_failure = self._failed is not None and self._depth == 1
            if outermost_failure:
                # zarr writes chunks in concurrent tasks and goes on with the others after the first failure:
                # let them finish (each is refused, the transaction being failed) before rolling back, so that
                # none of them can run after the rollback, in autocommit mode.
                wait_for_zarr_io()
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._end_transaction(conn, ok)

    def _end_transaction(self, conn: sqlite3.Connection, ok: bool) -> None:
        """COMMIT (or ROLLBACK after a failure); a failed commit is rolled back and reported."""
        failed, self._failed, writing, self._writing = self._failed, None, self._writing, False
        if self._fast_build:
            if failed is not None and ok:
                raise failed
            return
        if failed is None:
            try:
                conn.execute("COMMIT")
                return
            except sqlite3.Error as exc:
                failed = translate_sqlite_error(exc, self.path, "saving changes to" if writing else "reading")
                if not writing:  # the end of a read snapshot saves nothing: its reads said what failed, if anything
                    ok = False
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            # The connection's state is unknown: drop it. SQLite rolls the journal back on the next open.
            self._broken = (
                f"{self.path} was closed after a failed write could not be rolled back ({exc}); the file keeps its "
                "previous state: open it again"
            )
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self._conn = None
        if ok:  # the block itself succeeded, but its statements or the commit did not: say so
            raise failed

    def vacuum(self) -> None:
        """Rebuild the file without its free pages (SQLite VACUUM: atomic, needs free space of the file's size)."""
        with self._lock:
            if self._depth:
                raise MzarrError("internal error: VACUUM inside a transaction")
            try:
                self._connection().execute("VACUUM")
            except sqlite3.Error as exc:
                raise translate_sqlite_error(exc, self.path, "compacting") from None

    @property
    def broken(self) -> str | None:
        """Why this store dropped its connection after a failed rollback (None while it is usable)."""
        return self._broken

    def finalize(self) -> None:
        """Commit a freshly built file, give it the rollback journal and close it."""
        with self._lock:
            conn = self._connection()
            try:
                if conn.in_transaction:
                    conn.execute("COMMIT")
                conn.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.Error as exc:
                raise translate_sqlite_error(exc, self.path, "saving") from None
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                if not self.read_only:
                    with contextlib.suppress(sqlite3.Error):  # files written by 0.1.0 dev builds used WAL
                        self._conn.execute("PRAGMA journal_mode=DELETE")
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
            self._closed_for_good = True
        super().close()

    # -- Store API ----------------------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, SqliteStore) and other.path == self.path and other.read_only == self.read_only

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def with_read_only(self, read_only: bool = False) -> "SqliteStore":
        return SqliteStore(self.path, read_only=read_only)

    def get_bytes_sync(self, key: str) -> bytes | None:
        """The raw stored bytes of one key, or None."""
        rows = self._execute("SELECT value FROM zarr WHERE key=?", (key,))
        return rows[0][0] if rows else None

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        prototype = prototype or default_buffer_prototype()
        data = self.get_bytes_sync(key)
        if data is None:
            return None
        return prototype.buffer.from_bytes(_slice(data, byte_range))

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def exists(self, key: str) -> bool:
        return bool(self._execute("SELECT 1 FROM zarr WHERE key=?", (key,)))

    def _check_writable(self) -> None:
        """Writes happen inside a write transaction (or into a file being built), never one by one."""
        super()._check_writable()
        if not self._fast_build and not (self._writing and self._depth > 0):
            raise MzarrStorageError(
                f"refused to write to {self.path} outside a transaction (a write left over from a failed edit?); "
                "the file is unchanged"
            )

    def get_many_bytes_sync(self, keys: list[str]) -> dict[str, bytes]:
        """The stored bytes of several keys in one query (missing keys are absent from the result)."""
        marks = ",".join("?" * len(keys))
        return dict(self._execute(f"SELECT key, value FROM zarr WHERE key IN ({marks})", tuple(keys))) if keys else {}

    def data_version(self) -> int:
        """SQLite's PRAGMA data_version: changes when another connection (process) commits to the file."""
        return int(self._execute("PRAGMA data_version")[0][0])

    def set_bytes_sync(self, key: str, data: bytes) -> None:
        """Store raw bytes under a key, inside the current write transaction."""
        self._check_writable()
        self._execute("INSERT OR REPLACE INTO zarr (key, value) VALUES (?, ?)", (key, data))

    async def set(self, key: str, value: Buffer, byte_range: tuple[int, int] | None = None) -> None:
        if byte_range is not None:
            raise NotImplementedError("SqliteStore does not support partial writes")
        self.set_bytes_sync(key, value.to_bytes())

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        self._check_writable()
        self._execute("INSERT OR IGNORE INTO zarr (key, value) VALUES (?, ?)", (key, value.to_bytes()))

    async def delete(self, key: str) -> None:
        self._check_writable()
        self._execute("DELETE FROM zarr WHERE key=?", (key,))

    async def list(self) -> AsyncIterator[str]:
        for (key,) in self._execute("SELECT key FROM zarr"):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for (key,) in self._execute("SELECT key FROM zarr WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        prefix = prefix.rstrip("/")
        start = f"{prefix}/" if prefix else ""
        seen: set[str] = set()
        for (key,) in self._execute("SELECT key FROM zarr WHERE substr(key, 1, ?) = ?", (len(start), start)):
            rest = key[len(start) :]
            if not rest:
                continue
            child = rest.split("/", 1)[0]
            if child not in seen:
                seen.add(child)
                yield child

    def total_bytes(self) -> int:
        """Sum of the stored values' sizes (the chunk payload, without SQLite's own overhead)."""
        return int(self._execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM zarr")[0][0])
