"""What a data scientist opens a run for beside its metrics: the leaderboard, the dataset the
model was trained on (an MLflow dataset input) and a small profile of that data.

Written to a run by id through `MlflowClient`, like the rest of the tracking code, so
nothing depends on the fluent API's per-thread active run.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow.data
import pandas as pd
from mlflow.entities import DatasetInput, InputTag

from mlplatform.trainer.tracking import PipelineTracking

logger = logging.getLogger(__name__)

LEADERBOARD_CSV = "leaderboard/leaderboard.csv"
LEADERBOARD_TABLE = "leaderboard/leaderboard.json"
DATA_PROFILE = "data/profile.json"
#: The context tag MLflow's UI shows beside a dataset input.
_CONTEXT_TAG = "mlflow.data.context"
#: MLflow caps a dataset digest at 36 characters: the first 36 hex digits of our SHA-256.
_DIGEST_CHARS = 36


def log_file_as(tracking: PipelineTracking, local_path: Path, target: str) -> None:
    """Logs `local_path` on the parent run as the artifact `target` ("folder/name.ext")."""
    folder, _, name = target.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="mlp-artifact-") as staging:
        staged = Path(staging) / name
        shutil.copyfile(local_path, staged)
        tracking.client.log_artifact(tracking.parent_run_id or "", str(staged), folder or None)


def leaderboard_rows(grid: pd.DataFrame) -> list[dict[str, Any]]:
    """The compare grid as plain rows, estimator id first, in PyCaret's ranking order."""
    frame = grid.reset_index(names="estimator_id")
    frame["estimator_id"] = frame["estimator_id"].astype(str)
    rows = frame.to_dict(orient="records")
    return [{key: _plain(value) for key, value in row.items()} for row in rows]


def log_leaderboard(tracking: PipelineTracking, grid: pd.DataFrame) -> list[dict[str, Any]]:
    """The leaderboard as a CSV artifact and an MLflow table on the parent run; its rows."""
    run_id = tracking.parent_run_id or ""
    frame = grid.reset_index(names="estimator_id")
    with tempfile.TemporaryDirectory(prefix="mlp-leaderboard-") as folder:
        path = Path(folder) / Path(LEADERBOARD_CSV).name
        frame.to_csv(path, index=False)
        tracking.client.log_artifact(run_id, str(path), str(Path(LEADERBOARD_CSV).parent))
    tracking.client.log_table(run_id, frame, LEADERBOARD_TABLE)
    return leaderboard_rows(grid)


def data_profile(data: pd.DataFrame) -> dict[str, Any]:
    """Per column: type, missing count, and min/max (numbers, times) or distinct count."""
    columns: dict[str, Any] = {}
    for name in data.columns:
        column = data[name]
        entry: dict[str, Any] = {
            "type": str(column.dtype),
            "missing": int(column.isna().sum()),
        }
        present = column.dropna()
        if pd.api.types.is_bool_dtype(column):
            entry["distinct"] = int(present.nunique())
        elif pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
            entry["min"] = _plain(present.min()) if len(present) else None
            entry["max"] = _plain(present.max()) if len(present) else None
        else:
            entry["distinct"] = int(present.nunique())
        columns[str(name)] = entry
    return {"rows": len(data), "columns": columns}


def log_dataset(
    tracking: PipelineTracking,
    data: pd.DataFrame,
    target: str,
    source: str | None,
    digest: str | None,
    name: str,
) -> dict[str, Any]:
    """The training data as the parent run's dataset input (source, digest, schema, row
    count) and its profile as an artifact; returns the profile."""
    run_id = tracking.parent_run_id or ""
    profile = data_profile(data)
    tracking.client.log_dict(run_id, profile, DATA_PROFILE)
    short_digest = None if digest is None else digest.removeprefix("sha256:")[:_DIGEST_CHARS]
    dataset = _pandas_dataset(data, target, source, short_digest, name)
    tags = [InputTag(_CONTEXT_TAG, "training")]
    if digest:
        tags.append(InputTag("mlp.data_digest", digest))
    tracking.client.log_inputs(
        run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)]
    )
    return profile


def _pandas_dataset(
    data: pd.DataFrame, target: str, source: str | None, digest: str | None, name: str
) -> Any:
    """MLflow's pandas dataset; a source MLflow cannot resolve (`kaggle:...`) is kept as a tag
    of the run instead, and the dataset names no source."""
    try:
        return mlflow.data.from_pandas(
            data, source=source, targets=target, name=name, digest=digest
        )
    except Exception:
        logger.debug("MLflow cannot resolve the source %r", source, exc_info=True)
        return mlflow.data.from_pandas(data, targets=target, name=name, digest=digest)


def _plain(value: Any) -> Any:
    """numpy scalars and timestamps as JSON values."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return None if value != value else value  # NaN -> null
    if hasattr(value, "item"):
        return _plain(value.item())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
