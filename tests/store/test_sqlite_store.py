"""What only the SQLite backend promises: URIs, WAL, schema versioning, rollback."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mlplatform.common.settings import get_settings
from mlplatform.common.store import (
    InvalidRecordError,
    Outcome,
    PipelineRun,
    PredictionRecord,
    SchemaVersionError,
    StoreError,
    UnsupportedStoreURIError,
    open_store,
    sqlite_connections,
    sqlite_path,
)
from mlplatform.common.store.sqlite import SQLiteStore
from mlplatform.common.store.sqlite_rows import SCHEMA_1_PREDICTION_COLUMNS, prediction_row
from mlplatform.common.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from tests.store.conftest import T0

MakePrediction = Callable[..., PredictionRecord]


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Settings are read once per process; let a test read them again from its environment."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as connection:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]


def test_uri_paths_follow_sqlalchemy() -> None:
    assert sqlite_path("sqlite:///relative/store.db") == Path("relative/store.db")
    assert sqlite_path("sqlite:////var/lib/mlp/store.db") == Path("/var/lib/mlp/store.db")


@pytest.mark.parametrize("uri", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_uri_without_a_file_is_refused(uri: str) -> None:
    with pytest.raises(StoreError, match="names no database file"):
        open_store(uri)


@pytest.mark.parametrize(
    ("uri", "scheme"), [("postgresql://db/mlp", "postgresql"), ("store.db", "")]
)
def test_unknown_scheme_names_it_and_the_accepted_ones(uri: str, scheme: str) -> None:
    with pytest.raises(UnsupportedStoreURIError) as caught:
        open_store(uri)
    assert caught.value.scheme == scheme
    message = str(caught.value)
    assert uri in message
    assert "sqlite://, mongodb://, mongodb+srv://" in message


def test_default_uri_comes_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    monkeypatch.delenv("MLP_STORE_URI", raising=False)
    monkeypatch.setenv("MLP_DATA_DIR", str(tmp_path / "data"))
    with open_store() as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == tmp_path / "data" / "store.db"
    assert (tmp_path / "data" / "store.db").exists()

    monkeypatch.setenv("MLP_STORE_URI", f"sqlite:///{tmp_path / 'explicit.db'}")
    get_settings.cache_clear()
    with open_store() as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == tmp_path / "explicit.db"


def test_new_file_is_wal_with_the_current_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "store.db"
    with SQLiteStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
    assert pragma(path, "journal_mode") == "wal"
    assert pragma(path, "user_version") == SCHEMA_VERSION == len(MIGRATIONS)


def test_reopening_keeps_the_data(tmp_path: Path, make_prediction: MakePrediction) -> None:
    path = tmp_path / "store.db"
    with SQLiteStore(path) as store:
        store.create_run(PipelineRun(pipeline_id="run-1"))
        store.append_predictions([make_prediction(row_index=index) for index in range(3)])
    with SQLiteStore(path) as reopened:
        assert reopened.get_run("run-1").pipeline_id == "run-1"
        assert reopened.count_predictions() == 3
        assert reopened.schema_version() == SCHEMA_VERSION


def test_a_later_migration_upgrades_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.db"
    with SQLiteStore(path) as store:
        store.create_run(PipelineRun(pipeline_id="run-1"))
    next_release = (*MIGRATIONS, ("ALTER TABLE pipeline_runs ADD COLUMN owner_team TEXT",))
    monkeypatch.setattr(sqlite_connections, "MIGRATIONS", next_release)
    monkeypatch.setattr(sqlite_connections, "SCHEMA_VERSION", len(next_release))
    with SQLiteStore(path) as upgraded:
        assert upgraded.schema_version() == SCHEMA_VERSION + 1
        assert upgraded.get_run("run-1").pipeline_id == "run-1"
    with sqlite3.connect(path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(pipeline_runs)")]
    assert "owner_team" in columns


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError) as caught:
        SQLiteStore(path)
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)


def test_a_failed_write_rolls_back_and_the_store_stays_usable(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "store.db") as store:
        store.create_run(PipelineRun(pipeline_id="run-1"))
        with pytest.raises(InvalidRecordError):
            store.update_run("run-1", attempts="many")
        assert store.create_run(PipelineRun(pipeline_id="run-2")).created is True
        assert [run.pipeline_id for run in store.list_runs()] == ["run-2", "run-1"]


def test_unencodable_input_names_the_field(tmp_path: Path, make_prediction: MakePrediction) -> None:
    with SQLiteStore(tmp_path / "store.db") as store:
        with pytest.raises(InvalidRecordError) as caught:
            store.append_predictions([make_prediction(input_row={"blob": object()})])
        assert caught.value.field == "input_row"
        assert store.count_predictions() == 0


def test_numpy_values_are_stored_as_plain_numbers(
    tmp_path: Path, make_prediction: MakePrediction
) -> None:
    numpy = pytest.importorskip("numpy")
    record = make_prediction(
        input_row={"x": numpy.float32(0.5), "n": numpy.int64(3), "v": numpy.array([1, 2])},
        prediction=numpy.int64(1),
    )
    with SQLiteStore(tmp_path / "store.db") as store:
        store.append_predictions([record])
        [stored] = store.query_predictions()
    assert stored.input_row == {"x": 0.5, "n": 3, "v": [1, 2]}
    assert stored.prediction == 1


def test_schema_1_batch_rows_move_to_the_batch_tables_unchanged(
    tmp_path: Path, make_prediction: MakePrediction
) -> None:
    """A file written by schema 1 kept batch rows in `predictions`; migration 2 moves them to
    the batch tables and every record reads back as it was written, digits and types kept."""
    path = tmp_path / "store.db"
    with sqlite3.connect(path, isolation_level=None) as connection:
        for statement in MIGRATIONS[0]:
            assert isinstance(statement, str)
            connection.execute(statement)
        connection.execute("PRAGMA user_version = 1")
    legacy = [
        make_prediction(
            row_index=0,
            input_row={"x": -0.28876650599537753, "vip": True, "n": 7, "tags": ["a", None]},
            probabilities={"leave": 0.123456789012345678, "stay": 0.876543210987654321},
        ),
        make_prediction(batch_id="batch-2", request_id="req-7", row_index=0),
        make_prediction(row_index=1, input_row={}, probabilities=None, latency_ms=None),
        make_prediction(
            source="online", request_id="req-1", row_index=0, created_at=T0 + timedelta(seconds=1)
        ),
    ]
    schema_1_insert = (
        f"INSERT INTO predictions ({SCHEMA_1_PREDICTION_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    with sqlite3.connect(path, isolation_level=None) as connection:
        # Schema 1 rows: every column but the prediction key, which came later.
        connection.executemany(schema_1_insert, [prediction_row(record)[:-1] for record in legacy])
    with SQLiteStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.query_predictions() == legacy  # in time, then row index, order
        assert store.count_predictions(batch_id="batch-1") == 2
        # The batch key still holds across the move: a redelivery adds nothing.
        assert store.append_predictions(legacy[:3]) == 0
        assert store.append_predictions([make_prediction(row_index=2)]) == 1
    with sqlite3.connect(path) as connection:
        kinds = connection.execute("SELECT DISTINCT source FROM predictions").fetchall()
    assert kinds == [("online",)]


def test_a_schema_3_file_gains_prediction_keys_and_keeps_its_rows_and_outcomes(
    tmp_path: Path, make_prediction: MakePrediction
) -> None:
    """Migration 4 adds the prediction key to stored rows (NULL for rows logged before) and
    leaves every row and outcome as it was."""
    path = tmp_path / "store.db"
    with sqlite3.connect(path, isolation_level=None) as connection:
        for migration in MIGRATIONS[:3]:
            for statement in migration:
                if isinstance(statement, str):
                    connection.execute(statement)
        connection.execute("PRAGMA user_version = 3")
        online = make_prediction(source="online", request_id="req-1")
        connection.execute(
            f"INSERT INTO predictions ({SCHEMA_1_PREDICTION_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            prediction_row(online)[:-1],
        )
        connection.execute(
            "INSERT INTO outcomes VALUES ('request', 'req-1', 0, '\"leave\"', ?)",
            (T0.isoformat(timespec="milliseconds"),),
        )
    with SQLiteStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION == 4
        assert store.query_predictions() == [online]
        assert store.count_labelled("churn") == 1
        store.append_predictions([make_prediction(prediction_key="order-1")])
        report = store.record_outcomes([Outcome(kind="prediction_key", key="order-1", label=1)])
        assert (report.matched, report.labelled) == (1, 1)
        assert store.count_labelled("churn") == 2


def test_lookups_by_prediction_key_use_the_key_indexes(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "store.db") as store:
        store.list_runs()  # creates the schema
    with sqlite3.connect(tmp_path / "store.db") as connection:
        online = connection.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM predictions "
            "WHERE prediction_key = ? AND model_name = ?",
            ("order-1", "churn"),
        ).fetchall()
        batch = connection.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM batch_rows WHERE prediction_key = ?", ("order-1",)
        ).fetchall()
    assert "predictions_by_key_model" in str(online)
    assert "batch_rows_by_key" in str(batch)
