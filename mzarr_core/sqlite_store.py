"""A Zarr v3 store that keeps every key as a row of one SQLite file: the single-file `.mzarr` container.

SQLite gives what a ZIP cannot: in-place updates of single chunks, atomic transactions (a kill -9 leaves the
old or the new state), and readers in other processes that keep reading between a writer's commits.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from urllib.request import pathname2url

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from .errors import MzarrError

#: PRAGMA application_id of a .mzarr file: the ASCII bytes "MZAR", stored big-endian at file offset 68.
APPLICATION_ID = 0x4D5A4152
#: PRAGMA user_version: version of the container layout.
CONTAINER_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"


def is_sqlite_file(path: Path) -> bool:
    """True if the file starts with the SQLite 3 header."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_HEADER
    except OSError:
        return False


def has_mzarr_application_id(path: Path) -> bool:
    """True if the SQLite header carries the Mzarr application id (bytes 68-71 == b'MZAR')."""
    with open(path, "rb") as f:
        head = f.read(72)
    return len(head) == 72 and head[68:72] == APPLICATION_ID.to_bytes(4, "big")


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
    """

    supports_writes = True
    supports_deletes = True
    supports_listing = True
    supports_partial_writes = False

    def __init__(self, path: str | Path, *, read_only: bool = False, create: bool = False, fast_build: bool = False):
        super().__init__(read_only=read_only)
        self.path = Path(path)
        self._create = create
        self._fast_build = fast_build
        self._lock = threading.RLock()
        self._depth = 0
        self._failed = False
        self._closed_for_good = False
        self._conn: sqlite3.Connection | None = None

    # -- connection ---------------------------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if self._closed_for_good:
            # Late writes of a failed save must not re-create the temporary file that was just removed.
            raise MzarrError(f"{self.path} has been closed; open it again with Mzarr(path)")
        with self._lock:
            if self._conn is not None:
                return self._conn
            if self.read_only:
                self._roll_back_hot_journal()
                uri = f"file:{pathname2url(str(self.path.resolve()))}?mode=ro"  # quoted: '?'/'#' in names
                conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
            else:
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
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
            elif not self.read_only:
                # The rollback journal, always: the image stays one file (no -wal/-shm that outlive a session),
                # files on read-only media stay readable, and a crash mid-write is rolled back on the next open.
                # Readers in other processes read between commits (a commit waits for them, they wait for it).
                with contextlib.suppress(sqlite3.OperationalError):
                    conn.execute("PRAGMA journal_mode=DELETE")
            self._conn = conn
            return conn

    def _roll_back_hot_journal(self) -> None:
        """After a writer was killed mid-commit its journal is left beside the file; a read-only connection
        cannot roll it back, so open read-write once (where permitted) and let SQLite restore the old state."""
        journal = self.path.with_name(self.path.name + "-journal")
        if journal.exists() and journal.stat().st_size > 0:
            with contextlib.suppress(sqlite3.Error, OSError):
                conn = sqlite3.connect(self.path, timeout=30)
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
                conn.close()

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

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
            if self._depth == 0 and not self._fast_build:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                self._failed = False
            self._depth += 1
        ok = False
        try:
            yield
            ok = True
        finally:
            with self._lock:
                self._depth -= 1
                if write and not ok:
                    self._failed = True
                if self._depth == 0 and not self._fast_build:
                    conn.execute("ROLLBACK" if self._failed else "COMMIT")

    def finalize(self) -> None:
        """Commit a freshly built file, give it the rollback journal and close it."""
        with self._lock:
            conn = self._connection()
            if conn.in_transaction:
                conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode=DELETE")
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                if not self.read_only:
                    with contextlib.suppress(sqlite3.Error):  # files written by 0.1.0 dev builds used WAL
                        self._conn.execute("PRAGMA journal_mode=DELETE")
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

    def set_bytes_sync(self, key: str, data: bytes) -> None:
        """Store raw bytes under a key (inside the current transaction, if any)."""
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
