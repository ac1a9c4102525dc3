"""The SQLite store's schema, as an ordered list of migrations.

`PRAGMA user_version` holds how many migrations a database has had. A release that changes the
schema appends a migration (never edits a shipped one), and every store it opens is brought up
to date on first use, inside one write transaction, so several processes opening an old file at
once migrate it exactly once.

Runs and batches are kept as a JSON document plus the columns queries filter on: new optional
record fields need no migration. Predictions get real columns because they are queried by
model, version, batch, request and time, and are far too many to scan.
"""

from __future__ import annotations

_INITIAL_SCHEMA: tuple[str, ...] = (
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

# MIGRATIONS[n] takes a database from user_version n to n + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_INITIAL_SCHEMA,)

SCHEMA_VERSION = len(MIGRATIONS)
