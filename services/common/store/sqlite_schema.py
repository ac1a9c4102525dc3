"""The SQLite store's schema, as an ordered list of migrations.

`PRAGMA user_version` holds how many migrations a database has had. A release that changes the
schema appends a migration (never edits a shipped one), and every store it opens is brought up
to date on first use, inside one write transaction, so several processes opening an old file at
once migrate it exactly once.

Runs and batches are kept as a JSON document plus the columns queries filter on: new optional
record fields need no migration. Predictions get real columns because they are queried by
model, version, batch, request and time, and are far too many to scan. Online predictions live
in `predictions`; batch predictions, written by the hundred thousand, in the leaner
`batch_parts` and `batch_rows` (see `sqlite_batch_rows`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from mlplatform.common.store.sqlite_batch_rows import move_legacy_batch_rows
from mlplatform.common.store.sqlite_outcomes import OUTCOMES_TABLE

#: A migration step: SQL text, or a function for what SQL cannot do exactly.
Step = str | Callable[[sqlite3.Connection], None]

_INITIAL_SCHEMA: tuple[Step, ...] = (
    """
    CREATE TABLE pipeline_runs (
        pipeline_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        document TEXT NOT NULL
    )
    """,
    "CREATE INDEX pipeline_runs_by_time ON pipeline_runs (created_at)",
    "CREATE INDEX pipeline_runs_by_status_time ON pipeline_runs (status, created_at)",
    """
    CREATE TABLE predictions (
        id INTEGER PRIMARY KEY,
        model_name TEXT NOT NULL,
        model_version TEXT NOT NULL,
        source TEXT NOT NULL,
        request_id TEXT,
        batch_id TEXT,
        row_index INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        latency_ms REAL,
        input_row TEXT NOT NULL,
        prediction TEXT NOT NULL,
        probabilities TEXT
    )
    """,
    # The two unique indexes make appends idempotent; NULL ids never collide in SQLite, so an
    # online row is keyed by its request and a batch row by its batch.
    "CREATE UNIQUE INDEX predictions_by_batch_row ON predictions (batch_id, row_index)",
    "CREATE UNIQUE INDEX predictions_by_request_row ON predictions (request_id, row_index)",
    """
    CREATE INDEX predictions_by_model_version_time
        ON predictions (model_name, model_version, created_at, row_index)
    """,
    # `mlp predictions --model NAME` without a version, newest first, must not sort every row.
    "CREATE INDEX predictions_by_model_time ON predictions (model_name, created_at, row_index)",
    "CREATE INDEX predictions_by_time ON predictions (created_at, row_index)",
    """
    CREATE TABLE batches (
        batch_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        document TEXT NOT NULL
    )
    """,
    "CREATE INDEX batches_by_time ON batches (created_at)",
    """
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        message_id TEXT,
        message_type TEXT,
        reason TEXT NOT NULL,
        body BLOB NOT NULL,
        recorded_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX dead_letters_by_time ON dead_letters (recorded_at)",
    "CREATE INDEX dead_letters_by_queue_time ON dead_letters (queue, recorded_at)",
    """
    CREATE TABLE serving_history (
        id INTEGER PRIMARY KEY,
        model_name TEXT NOT NULL,
        version TEXT NOT NULL,
        alias TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT
    )
    """,
    "CREATE INDEX serving_history_by_model_time ON serving_history (model_name, started_at)",
)

# Batch predictions move to lean tables of their own (see `sqlite_batch_rows`): `predictions`
# keeps online rows, and its batch key index goes with the batch rows.
_BATCH_TABLES: tuple[Step, ...] = (
    """
    CREATE TABLE batch_parts (
        id INTEGER PRIMARY KEY,
        batch_id TEXT NOT NULL,
        model_name TEXT NOT NULL,
        model_version TEXT NOT NULL,
        request_id TEXT,
        created_at TEXT NOT NULL,
        latency_ms REAL,
        first_row INTEGER NOT NULL,
        last_row INTEGER NOT NULL,
        row_count INTEGER NOT NULL,
        input_columns TEXT NOT NULL,
        class_names TEXT
    )
    """,
    "CREATE INDEX batch_parts_by_batch ON batch_parts (batch_id, first_row)",
    "CREATE INDEX batch_parts_by_request ON batch_parts (request_id) WHERE request_id IS NOT NULL",
    """
    CREATE INDEX batch_parts_by_model_version_time
        ON batch_parts (model_name, model_version, created_at)
    """,
    "CREATE INDEX batch_parts_by_model_time ON batch_parts (model_name, created_at)",
    "CREATE INDEX batch_parts_by_time ON batch_parts (created_at)",
    """
    CREATE TABLE batch_rows (
        batch_id TEXT NOT NULL,
        row_index INTEGER NOT NULL,
        part_id INTEGER NOT NULL,
        input_values TEXT NOT NULL,
        prediction TEXT NOT NULL,
        probabilities TEXT,
        PRIMARY KEY (batch_id, row_index)
    )
    """,
    move_legacy_batch_rows,
    "DROP INDEX predictions_by_batch_row",
)

# Predictions carry the caller's own key when one was sent (a key column); outcomes may name
# predictions by it, with or without the model, so the index leads with the key. Rows logged
# before keep NULL, which the partial indexes leave out. Adding a column rewrites no row.
_PREDICTION_KEYS: tuple[Step, ...] = (
    "ALTER TABLE predictions ADD COLUMN prediction_key TEXT",
    """
    CREATE INDEX predictions_by_key_model ON predictions (prediction_key, model_name)
        WHERE prediction_key IS NOT NULL
    """,
    "ALTER TABLE batch_rows ADD COLUMN prediction_key TEXT",
    # A batch row's model is on its part, reached by the part's primary key.
    """
    CREATE INDEX batch_rows_by_key ON batch_rows (prediction_key)
        WHERE prediction_key IS NOT NULL
    """,
)

# MIGRATIONS[n] takes a database from user_version n to n + 1.
MIGRATIONS: tuple[tuple[Step, ...], ...] = (
    _INITIAL_SCHEMA,
    _BATCH_TABLES,
    OUTCOMES_TABLE,
    _PREDICTION_KEYS,
)

SCHEMA_VERSION = len(MIGRATIONS)
