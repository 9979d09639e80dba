"""Tools for testing what Mzarr promises under failure (used by its tests and benchmarks/reliability.py).

Not needed to use Mzarr; kept in the package so that the tests and the stress benchmark share one definition.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

SQLITE_IOERR = 10
SQLITE_FULL = 13


class FlakyConnection:
    """An sqlite3 connection whose ``fail_at``-th modifying statement (INSERT/DELETE/UPDATE/COMMIT) fails like a full
    disk (``code`` 13) or an I/O error (10). With ``auto_rollback`` it also does what SQLite itself may do on those
    errors: roll the whole transaction back and leave the connection in autocommit mode."""

    def __init__(self, conn: sqlite3.Connection, fail_at: int, code: int = SQLITE_FULL, auto_rollback: bool = True):
        self.real, self._fail_at, self._code, self._auto_rollback = conn, fail_at, code, auto_rollback
        self.count = 0  # modifying statements attempted so far

    @property
    def in_transaction(self) -> bool:
        return self.real.in_transaction

    def execute(self, sql: str, params: tuple = ()) -> Any:
        if sql.lstrip().upper().startswith(("INSERT", "DELETE", "UPDATE", "COMMIT")):
            self.count += 1
            if self.count == self._fail_at:
                if self._auto_rollback and self.real.in_transaction:
                    self.real.execute("ROLLBACK")
                exc = sqlite3.OperationalError("database or disk is full" if self._code == SQLITE_FULL else "disk I/O error")
                exc.sqlite_errorcode = self._code  # type: ignore[attr-defined]
                raise exc
        return self.real.execute(sql, params)

    def close(self) -> None:
        self.real.close()


@contextlib.contextmanager
def failing_sqlite(image: Any, fail_at: int, code: int = SQLITE_FULL, auto_rollback: bool = True) -> Iterator[FlakyConnection]:
    """Within the block, the ``fail_at``-th modifying statement on ``image``'s single-file store fails (see
    :class:`FlakyConnection`); the real connection is put back afterwards."""
    store = image._store
    store._connection()  # opened now, so that the flaky wrapper sits on the real connection
    flaky = FlakyConnection(store._conn, fail_at, code, auto_rollback)
    store._conn = flaky
    try:
        yield flaky
    finally:
        if store._conn is flaky:
            store._conn = flaky.real
