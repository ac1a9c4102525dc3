"""Data-loading steps: a local file (CSV, CSV in a zip, Parquet) or a Kaggle data set."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from mlplatform.client.data_roots import DataAccessRefused, kaggle_uri
from mlplatform.trainer.steps.base import Findings, PipelineContext, StepFailure, step
from mlplatform.trainer.steps.data_files import read_table
from mlplatform.v1 import pipeline_pb2

__all__ = ["data_digest", "load_data_from_file", "load_data_from_kaggle", "read_table"]


def data_digest(frame: pd.DataFrame) -> str:
    """A content hash of the training data, to tag the model version it produced."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    columns = json.dumps([str(name) for name in frame.columns]).encode()
    return "sha256:" + hashlib.sha256(columns + hashed.tobytes()).hexdigest()


def _loaded(context: PipelineContext, frame: pd.DataFrame, source: str) -> Findings:
    if frame.empty:
        raise StepFailure(f"{source} holds no rows")
    context.data = frame
    context.data_source = source
    context.data_digest = data_digest(frame)
    return {
        "source": source,
        "rows": len(frame),
        "columns": len(frame.columns),
        "digest": context.data_digest,
    }


@step("load_data_from_file")
def load_data_from_file(spec: pipeline_pb2.LoadDataFromFile, context: PipelineContext) -> Findings:
    # Checked again here, not only when the message arrived: `mlp train` and any other
    # caller of the runner meet this step, and the path opened is the one checked.
    try:
        path = context.data_roots.check_path(spec.path)
    except DataAccessRefused as refusal:
        raise StepFailure(str(refusal)) from None
    frame = read_table(path, spec.format, spec.member, context.data_limits)
    return _loaded(context, frame, spec.path)


def kaggle_credentials_present() -> bool:
    """Whether the Kaggle API will find credentials (environment or kaggle.json)."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    return (config_dir / "kaggle.json").is_file()


def download_from_kaggle(dataset: str, file_name: str, target_dir: str) -> str:
    """Downloads one file of a Kaggle data set with the official client; returns its path."""
    if not kaggle_credentials_present():
        raise StepFailure(
            "Kaggle credentials not found: set KAGGLE_USERNAME and KAGGLE_KEY, or put "
            "kaggle.json in ~/.kaggle (or in KAGGLE_CONFIG_DIR)"
        )
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as error:
        raise StepFailure(
            "the Kaggle client is not installed on this worker: pip install 'mlplatform[kaggle]'"
        ) from error
    api = KaggleApi()
    api.authenticate()
    api.dataset_download_file(dataset, file_name, path=target_dir, quiet=True)
    for candidate in (Path(target_dir) / file_name, Path(target_dir) / f"{file_name}.zip"):
        if candidate.is_file():
            return str(candidate)
    raise StepFailure(f"Kaggle returned no file '{file_name}' for data set '{dataset}'")


@step("load_data_from_kaggle")
def load_data_from_kaggle(
    spec: pipeline_pb2.LoadDataFromKaggle, context: PipelineContext
) -> Findings:
    source = kaggle_uri(spec.kaggle_dataset_name, spec.training_file_name)
    try:
        context.data_roots.check_uri(source)
    except DataAccessRefused as refusal:
        raise StepFailure(str(refusal)) from None
    downloader = context.kaggle_downloader or download_from_kaggle
    with tempfile.TemporaryDirectory(prefix="mlp-kaggle-") as folder:
        try:
            downloaded = Path(downloader(spec.kaggle_dataset_name, spec.training_file_name, folder))
        except StepFailure:
            raise
        except Exception as error:  # the client's errors (HTTP 403/404...) in the user's words
            raise StepFailure(
                f"downloading '{spec.training_file_name}' of Kaggle data set "
                f"'{spec.kaggle_dataset_name}' failed: {error}"
            ) from error
        is_zip = downloaded.suffix.lower() == ".zip"
        frame = read_table(downloaded, "zip" if is_zip else "", "", context.data_limits)
    return _loaded(context, frame, source)
