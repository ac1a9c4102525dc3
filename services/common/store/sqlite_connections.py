"""Connections to one SQLite file: one per thread, WAL mode, write transactions, migrations.

WAL lets readers run while one process writes. Every write is a `BEGIN IMMEDIATE`
transaction: it takes the write lock at its first statement, so concurrent writers queue on the
busy timeout instead of failing when a read lock cannot be upgraded, and a read-modify-write is
atomic across processes. One connection per thread because the predictor writes from a
background thread while request threads read, and a connection is not safe to share mid-query.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlplatform.common.store.base import SchemaVersionError, StoreError
from mlplatform.common.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION

DEFAULT_BUSY_TIMEOUT_SECONDS = 30.0


class SQLiteConnections:
    """Per-thread connections to `path`, whose schema is brought up to date on open."""

    def __init__(
        self, path: Path, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS
    ) -> None:
        self.path = path
        self._busy_timeout_seconds = busy_timeout_seconds
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        self._owner_pid = os.getpid()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the folder of SQLite store {path}: {error}") from error
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_seconds,
            isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
            check_same_thread=False,  # only so close() may close every thread's connection
        )
        connection.row_factory = sqlite3.Row
        try:
            journal_mode = self._switch_to_wal(connection)
        except sqlite3.Error:
            connection.close()
            raise
        if str(journal_mode).lower() != "wal":
            connection.close()
            raise StoreError(f"SQLite store {self.path} cannot use WAL mode (got {journal_mode})")
        # FULL: a committed write survives power loss, and consumers ack once a write commits.
        connection.execute("PRAGMA synchronous = FULL")
        return connection

    def _switch_to_wal(self, connection: sqlite3.Connection) -> str:
        """`PRAGMA journal_mode = WAL`, retried while the file is locked. Switching a new file
        to WAL needs it to itself and SQLite answers "database is locked" at once instead of
        waiting the busy timeout, so processes opening a new store together (one of them
        creating the schema) failed now and then; they now wait as long as a write would."""
        deadline = time.monotonic() + self._busy_timeout_seconds
        while True:
            try:
                return str(connection.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        if self._closed:
            raise StoreError(f"SQLite store {self.path} is closed")
        if os.getpid() != self._owner_pid:
            # A forked child must not use its parent's connections (SQLite forbids it).
            self._local = threading.local()
            self._opened = []
            self._owner_pid = os.getpid()
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = self._connect()
            except sqlite3.Error as error:
                raise StoreError(f"cannot open SQLite store {self.path}: {error}") from error
            self._local.connection = connection
            with self._opened_lock:
                self._opened.append(connection)
        return connection

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed if the block succeeds, rolled back if it raises."""
        connection = self.connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            yield connection
            connection.execute("COMMIT")
        except BaseException as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise StoreError(f"SQLite store {self.path}: {error}") from error
            raise

    def read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """The rows of one query, outside any write transaction."""
        try:
            return self.connection().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path}: {error}") from error

    def schema_version(self) -> int:
        """The database's `PRAGMA user_version`: how many migrations it has had."""
        return int(self.read("PRAGMA user_version")[0][0])

    def _migrate(self) -> None:
        found = self.schema_version()
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(found, SCHEMA_VERSION)
        if found == SCHEMA_VERSION:
            return
        with self.write() as connection:
            # Read again under the write lock: another process may have migrated meanwhile.
            found = int(connection.execute("PRAGMA user_version").fetchone()[0])
            if found > SCHEMA_VERSION:
                raise SchemaVersionError(found, SCHEMA_VERSION)
            for migration in MIGRATIONS[found:]:
                for step in migration:
                    if isinstance(step, str):
                        connection.execute(step)
                    else:
                        step(connection)
            if found < SCHEMA_VERSION:
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close every thread's connection; later use raises StoreError."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
            self._closed = True
        for connection in opened:
            connection.close()
