"""The embedded store: one SQLite file, shared by every local process.

Connections, WAL and migrations live in `sqlite_connections`, row mapping in `sqlite_rows`;
this module says what each store operation reads and writes. Runs and batches are JSON
documents updated by read-modify-write inside one write transaction, which SQLite serialises
across threads and processes.

Longer than ~300 lines on purpose: one method per operation of the store interface
(`base.Store`); connections, rows, batch rows and outcomes already live in their own modules.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from mlplatform.common.store import sqlite_outcomes
from mlplatform.common.store.base import DEFAULT_QUERY_LIMIT, NotFoundError, Store
from mlplatform.common.store.batch_predictions import BatchPredictions
from mlplatform.common.store.outcomes import LabelledPrediction, Outcome, OutcomeReport
from mlplatform.common.store.records import (
    BatchRecord,
    BatchStatus,
    Created,
    DeadLetter,
    PipelineRun,
    PredictionRecord,
    PredictionSource,
    RunEvent,
    RunStatus,
    ServingRecord,
    StepRecord,
    utc_now,
)
from mlplatform.common.store.sqlite_batch_rows import (
    SELECT_ROWS,
    EncodedPart,
    encode_batch,
    encode_record,
    records_from_rows,
    write_part,
)
from mlplatform.common.store.sqlite_connections import (
    DEFAULT_BUSY_TIMEOUT_SECONDS,
    SQLiteConnections,
)
from mlplatform.common.store.sqlite_rows import (
    INSERT_PREDICTION,
    PREDICTION_COLUMNS,
    build_prediction_where,
    prediction_from_row,
    prediction_row,
    time_text,
)
from mlplatform.common.store.transitions import (
    BATCH_KEY_FIELDS,
    RUN_KEY_FIELDS,
    apply_changes,
    check_limit,
    new_serving_span,
    status_value,
    with_event,
    with_part_done,
    with_step,
)


class SQLiteStore(Store):
    """The store in one SQLite file, created with its schema on first use."""

    def __init__(
        self, path: str | Path, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS
    ) -> None:
        self.path = Path(path)
        self._connections = SQLiteConnections(self.path, busy_timeout_seconds)
        self._write = self._connections.write
        self._read = self._connections.read

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def schema_version(self) -> int:
        """The schema version (`PRAGMA user_version`) of the open database."""
        return self._connections.schema_version()

    def close(self) -> None:
        self._connections.close()

    # -- documents (runs and batches) ----------------------------------------------------------

    def _load_run(self, connection: sqlite3.Connection, pipeline_id: str) -> PipelineRun:
        row = connection.execute(
            "SELECT document FROM pipeline_runs WHERE pipeline_id = ?", (pipeline_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError("pipeline run", pipeline_id)
        return PipelineRun.model_validate_json(row["document"])

    def _save_run(self, connection: sqlite3.Connection, run: PipelineRun) -> PipelineRun:
        connection.execute(
            "INSERT INTO pipeline_runs (pipeline_id, status, created_at, document) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (pipeline_id) DO UPDATE SET "
            "status = excluded.status, created_at = excluded.created_at, "
            "document = excluded.document",
            (run.pipeline_id, run.status.value, time_text(run.created_at), run.model_dump_json()),
        )
        return run

    def _load_batch(self, connection: sqlite3.Connection, batch_id: str) -> BatchRecord:
        row = connection.execute(
            "SELECT document FROM batches WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError("batch", batch_id)
        return BatchRecord.model_validate_json(row["document"])

    def _save_batch(self, connection: sqlite3.Connection, batch: BatchRecord) -> BatchRecord:
        connection.execute(
            "INSERT INTO batches (batch_id, status, created_at, document) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (batch_id) DO UPDATE SET status = excluded.status, "
            "created_at = excluded.created_at, document = excluded.document",
            (
                batch.batch_id,
                batch.status.value,
                time_text(batch.created_at),
                batch.model_dump_json(),
            ),
        )
        return batch

    # -- pipeline runs -------------------------------------------------------------------------

    def create_run(self, run: PipelineRun) -> Created[PipelineRun]:
        with self._write() as connection:
            try:
                return Created(self._load_run(connection, run.pipeline_id), False)
            except NotFoundError:
                return Created(self._save_run(connection, run), True)

    def get_run(self, pipeline_id: str) -> PipelineRun:
        rows = self._read("SELECT document FROM pipeline_runs WHERE pipeline_id = ?", [pipeline_id])
        if not rows:
            raise NotFoundError("pipeline run", pipeline_id)
        return PipelineRun.model_validate_json(rows[0]["document"])

    def update_run(self, pipeline_id: str, /, **changes: Any) -> PipelineRun:
        with self._write() as connection:
            run = self._load_run(connection, pipeline_id)
            return self._save_run(connection, apply_changes(run, changes, RUN_KEY_FIELDS))

    def upsert_step(self, pipeline_id: str, step: StepRecord) -> PipelineRun:
        with self._write() as connection:
            run = self._load_run(connection, pipeline_id)
            return self._save_run(connection, with_step(run, step))

    def append_event(self, pipeline_id: str, event: RunEvent) -> None:
        with self._write() as connection:
            run = self._load_run(connection, pipeline_id)
            self._save_run(connection, with_event(run, event))

    def list_runs(
        self, limit: int = 50, status: RunStatus | str | None = None
    ) -> list[PipelineRun]:
        where, params = "", []
        if status is not None:
            where, params = " WHERE status = ?", [status_value(status, RunStatus)]
        rows = self._read(
            f"SELECT document FROM pipeline_runs{where} ORDER BY created_at DESC, pipeline_id DESC "
            "LIMIT ?",
            [*params, check_limit(limit)],
        )
        return [PipelineRun.model_validate_json(row["document"]) for row in rows]

    # -- predictions ---------------------------------------------------------------------------

    def append_predictions(self, records: Iterable[PredictionRecord]) -> int:
        online: list[tuple[Any, ...]] = []
        parts: list[EncodedPart] = []
        for record in records:  # all encoded before the write lock is taken
            if record.source is PredictionSource.BATCH:
                parts.append(encode_record(record))
            else:
                online.append(prediction_row(record))
        if not online and not parts:
            return 0
        with self._write() as connection:
            added = connection.executemany(INSERT_PREDICTION, online).rowcount if online else 0
            return added + sum(write_part(connection, part) for part in parts)

    def append_batch_predictions(self, batch: BatchPredictions) -> int:
        part = encode_batch(batch)  # encoded before the write lock is taken
        if not part.row_count:
            return 0
        with self._write() as connection:
            return write_part(connection, part)

    def query_predictions(
        self,
        model_name: str | None = None,
        model_version: str | None = None,
        batch_id: str | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_QUERY_LIMIT,
        newest_first: bool = False,
    ) -> list[PredictionRecord]:
        """Online rows and batch rows each come sorted and cut to `limit` from their own
        tables; the first `limit` of the two merged are the answer."""
        filters = (model_name, model_version, batch_id, request_id, since, until)
        limit = check_limit(limit)
        direction = "DESC" if newest_first else "ASC"
        online: list[sqlite3.Row] = []
        if batch_id is None:
            where, params = build_prediction_where(*filters)
            online = self._read(
                f"SELECT {PREDICTION_COLUMNS} FROM predictions{where} "
                f"ORDER BY created_at {direction}, row_index {direction}, id {direction} LIMIT ?",
                [*params, limit],
            )
        where, params = build_prediction_where(*filters, table="p")
        batch = self._read(
            f"{SELECT_ROWS}{where} "
            f"ORDER BY p.created_at {direction}, r.row_index {direction}, p.id {direction} "
            "LIMIT ?",
            [*params, limit],
        )
        if not batch:
            return [prediction_from_row(row) for row in online]
        if not online:
            return list(records_from_rows(batch))
        # Merged as rows (times are fixed-width text, so text order is time order); only the
        # rows that make the cut become records.
        merged = heapq.merge(
            ((row["created_at"], row["row_index"], False, row) for row in online),
            ((row["created_at"], row["row_index"], True, row) for row in batch),
            key=lambda item: item[:3],
            reverse=newest_first,
        )
        kept = list(islice(merged, limit))
        batch_records = records_from_rows(row for *_key, is_batch, row in kept if is_batch)
        return [
            next(batch_records) if is_batch else prediction_from_row(row)
            for *_key, is_batch, row in kept
        ]

    def count_predictions(
        self,
        model_name: str | None = None,
        model_version: str | None = None,
        batch_id: str | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        filters = (model_name, model_version, batch_id, request_id, since, until)
        online = 0
        if batch_id is None:
            where, params = build_prediction_where(*filters)
            online = int(self._read(f"SELECT COUNT(*) FROM predictions{where}", params)[0][0])
        where, params = build_prediction_where(*filters, table="p")
        batch = self._read(f"SELECT TOTAL(p.row_count) FROM batch_parts AS p{where}", params)
        return online + int(batch[0][0])

    # -- outcomes ------------------------------------------------------------------------------

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> OutcomeReport:
        with self._write() as connection:
            return sqlite_outcomes.record_outcomes(connection, outcomes)

    def count_labelled(
        self,
        model_name: str,
        model_version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        return sqlite_outcomes.count_labelled(self._read, model_name, model_version, since, until)

    def labelled_predictions(
        self,
        model_name: str,
        model_version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_QUERY_LIMIT,
    ) -> list[LabelledPrediction]:
        return sqlite_outcomes.labelled_predictions(
            self._read, model_name, model_version, since, until, check_limit(limit)
        )

    # -- batches -------------------------------------------------------------------------------

    def create_batch(self, batch: BatchRecord) -> Created[BatchRecord]:
        # Every part of a batch calls this and all but the first find it: a plain read first,
        # so they do not queue for the write lock behind another process's inserts.
        try:
            return Created(self.get_batch(batch.batch_id), False)
        except NotFoundError:
            pass
        with self._write() as connection:
            try:
                return Created(self._load_batch(connection, batch.batch_id), False)
            except NotFoundError:
                return Created(self._save_batch(connection, batch), True)

    def get_batch(self, batch_id: str) -> BatchRecord:
        rows = self._read("SELECT document FROM batches WHERE batch_id = ?", [batch_id])
        if not rows:
            raise NotFoundError("batch", batch_id)
        return BatchRecord.model_validate_json(rows[0]["document"])

    def mark_batch_part_done(self, batch_id: str, part_index: int, rows: int) -> BatchRecord:
        with self._write() as connection:
            batch = self._load_batch(connection, batch_id)
            counted = with_part_done(batch, part_index, rows, utc_now())
            return batch if counted is None else self._save_batch(connection, counted)

    def update_batch(self, batch_id: str, /, **changes: Any) -> BatchRecord:
        with self._write() as connection:
            batch = self._load_batch(connection, batch_id)
            changes.setdefault("updated_at", utc_now())
            return self._save_batch(connection, apply_changes(batch, changes, BATCH_KEY_FIELDS))

    def list_batches(
        self, limit: int = 50, status: BatchStatus | str | None = None
    ) -> list[BatchRecord]:
        where, params = "", []
        if status is not None:
            where, params = " WHERE status = ?", [status_value(status, BatchStatus)]
        rows = self._read(
            f"SELECT document FROM batches{where} ORDER BY created_at DESC, batch_id DESC LIMIT ?",
            [*params, check_limit(limit)],
        )
        return [BatchRecord.model_validate_json(row["document"]) for row in rows]

    # -- dead letters --------------------------------------------------------------------------

    def record_dead_letter(self, letter: DeadLetter) -> DeadLetter:
        with self._write() as connection:
            connection.execute(
                "INSERT INTO dead_letters "
                "(queue, message_id, message_type, reason, body, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    letter.queue,
                    letter.message_id,
                    letter.message_type,
                    letter.reason,
                    letter.body,
                    time_text(letter.recorded_at),
                ),
            )
        return letter

    def list_dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        where, params = ("", []) if queue is None else (" WHERE queue = ?", [queue])
        rows = self._read(
            "SELECT queue, message_id, message_type, reason, body, recorded_at FROM dead_letters"
            f"{where} ORDER BY recorded_at DESC, id DESC LIMIT ?",
            [*params, check_limit(limit)],
        )
        return [
            DeadLetter(
                queue=row["queue"],
                message_id=row["message_id"],
                message_type=row["message_type"],
                reason=row["reason"],
                body=bytes(row["body"]),
                recorded_at=datetime.fromisoformat(row["recorded_at"]),
            )
            for row in rows
        ]

    # -- model serving history -----------------------------------------------------------------

    def record_serving(
        self,
        model_name: str,
        version: str,
        alias: str | None = None,
        started_at: datetime | None = None,
    ) -> ServingRecord:
        span = new_serving_span(model_name, version, alias, started_at)
        with self._write() as connection:
            open_rows = connection.execute(
                "SELECT id, version, started_at FROM serving_history "
                "WHERE model_name = ? AND alias IS ? AND ended_at IS NULL",
                (span.model_name, span.alias),
            ).fetchall()
            for row in open_rows:
                if row["version"] == span.version:
                    return span.model_copy(
                        update={"started_at": datetime.fromisoformat(row["started_at"])}
                    )
            connection.execute(
                "UPDATE serving_history SET ended_at = ? "
                "WHERE model_name = ? AND alias IS ? AND ended_at IS NULL",
                (time_text(span.started_at), span.model_name, span.alias),
            )
            connection.execute(
                "INSERT INTO serving_history (model_name, version, alias, started_at) "
                "VALUES (?, ?, ?, ?)",
                (span.model_name, span.version, span.alias, time_text(span.started_at)),
            )
        return span

    def list_serving(self, model_name: str, limit: int = 100) -> list[ServingRecord]:
        rows = self._read(
            "SELECT model_name, version, alias, started_at, ended_at FROM serving_history "
            "WHERE model_name = ? ORDER BY started_at DESC, id DESC LIMIT ?",
            [model_name, check_limit(limit)],
        )
        return [
            ServingRecord(
                model_name=row["model_name"],
                version=row["version"],
                alias=row["alias"],
                started_at=datetime.fromisoformat(row["started_at"]),
                ended_at=None
                if row["ended_at"] is None
                else datetime.fromisoformat(row["ended_at"]),
            )
            for row in rows
        ]
