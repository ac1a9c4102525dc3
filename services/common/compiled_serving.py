"""Whether a loaded model serves compiled (`--compile auto|onnx|off`), and why not.

`auto` (the default) serves the ONNX Runtime form of a model when it compiles and passes the
check (see compiled_model), and scikit-learn otherwise, with the reason logged once per
loaded version and kept on the model (GetModelInfo, V2 metadata and the load metric show it).
`onnx` refuses to serve a model that does not compile; `off` never compiles.

The trainer logs the graph beside the registered model (`model.onnx`, with `model.onnx.json`:
the digest of the pickle it was compiled from and the trainer's check). A loader uses it
when the digest matches the pickle it loaded, and compiles afresh otherwise; either way the
check runs again here, on this process's ONNX Runtime. The check's rows are the version's
baseline sample when the trainer stored one, else rows built from its input example.

This module imports no ONNX package at its top: without the `compiled` extra, `auto` serves
scikit-learn (saying so) and `onnx` fails the load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from mlplatform.common.extras import MissingExtraError

logger = logging.getLogger(__name__)

ONNXRUNTIME = "onnxruntime"
SKLEARN = "sklearn"
GRAPH_FILE = "model.onnx"
GRAPH_RECORD_FILE = "model.onnx.json"
#: The baseline's feature sample, as monitoring stores it on the version's run.
BASELINE_FEATURES = "baseline/features.parquet"
DEFAULT_TOLERANCE = 1e-6


class CompileMode(StrEnum):
    """`--compile`: serve compiled when exact (auto), always (onnx), or never (off)."""

    AUTO = "auto"
    ONNX = "onnx"
    OFF = "off"


@dataclass(frozen=True)
class CompileOptions:
    """How loading compiles: the mode and the check's tolerance on probabilities."""

    mode: CompileMode = CompileMode.AUTO
    tolerance: float = DEFAULT_TOLERANCE


@dataclass(frozen=True)
class CompileOutcome:
    """The compiled model, or why the model is served by scikit-learn."""

    compiled: Any = None
    reason: str = ""
    check: dict[str, Any] | None = None
    from_artifact: bool = False

    @property
    def backend(self) -> str:
        return ONNXRUNTIME if self.compiled is not None else SKLEARN


class CompileRefusedError(Exception):
    """`--compile onnx` and the model does not compile or fails the check."""


def file_digest(path: Path) -> str:
    """sha256 of a file, hex."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def baseline_features(client: Any, name: str, version: str) -> pd.DataFrame | None:
    """The version's baseline feature sample, or None when it has none (or it is unreadable)."""
    try:
        run_id = client.get_model_version(name, version).run_id
        if not run_id:
            return None
        with tempfile.TemporaryDirectory(prefix="mlp-baseline-") as folder:
            path = client.download_artifacts(run_id, BASELINE_FEATURES, folder)
            return pd.read_parquet(path)
    except Exception:  # no baseline: the check builds rows from the input example
        logger.debug("no baseline sample for %s version %s", name, version, exc_info=True)
        return None


def _stored_graph(model_dir: Path, pickle_digest: str) -> tuple[bytes, bool] | None:
    """The trainer's graph, when it was compiled from this very pickle."""
    graph_path, record_path = model_dir / GRAPH_FILE, model_dir / GRAPH_RECORD_FILE
    if not graph_path.is_file() or not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
    except ValueError:
        return None
    if record.get("model_sha256") != pickle_digest:
        logger.info("ignoring %s: it was compiled from another pickle", graph_path.name)
        return None
    return graph_path.read_bytes(), bool(record.get("double", True))


def compile_loaded(
    model: Any,
    options: CompileOptions,
    model_dir: Path | None = None,
    pickle_digest: str | None = None,
    known_rows: pd.DataFrame | None = None,
) -> CompileOutcome:
    """Compile and check `model` (a LoadedModel); the outcome says why when it is not compiled.

    Raises CompileRefusedError in `onnx` mode instead of returning a reason.
    """
    if options.mode is CompileMode.OFF:
        return CompileOutcome(reason="compiling is off (--compile off)")
    started = time.perf_counter()
    outcome = _compile_and_check(model, options, model_dir, pickle_digest, known_rows)
    shown = f"{model.name} version {model.version}"
    if outcome.compiled is None:
        if options.mode is CompileMode.ONNX:
            raise CompileRefusedError(outcome.reason)
        logger.warning("%s is served by scikit-learn: %s", shown, outcome.reason)
    else:
        logger.info(
            "%s is served by ONNX Runtime (%s graph%s), checked on %d rows in %.2f s",
            shown,
            "double" if outcome.compiled.double else "float32",
            ", the trainer's" if outcome.from_artifact else "",
            (outcome.check or {}).get("rows", 0),
            time.perf_counter() - started,
        )
    return outcome


def _compile_and_check(
    model: Any,
    options: CompileOptions,
    model_dir: Path | None,
    pickle_digest: str | None,
    known_rows: pd.DataFrame | None,
) -> CompileOutcome:
    try:
        from mlplatform.common import compiled_model
        from mlplatform.common.onnx_translation import UntranslatableError
    except MissingExtraError as error:
        return CompileOutcome(reason=str(error))
    stored = None
    if model_dir is not None and pickle_digest is not None:
        stored = _stored_graph(model_dir, pickle_digest)
    try:
        compiled = compiled_model.compile_pipeline(
            model.estimator,
            model.input_schema,
            model.problem_type,
            graph=stored[0] if stored else None,
            double=stored[1] if stored else True,
        )
    except UntranslatableError as error:
        return CompileOutcome(reason=str(error))
    except Exception as error:  # a converter's own bug must not stop the model from serving
        logger.debug("compiling %s failed", model.name, exc_info=True)
        return CompileOutcome(reason=f"compiling failed: {type(error).__name__}: {error}")
    if known_rows is None:
        known_rows = model.input_example
    sample = _checked_sample(model, compiled_model.sample_rows(model.input_schema, known_rows))
    try:
        result = compiled_model.check(compiled, model.estimator, sample, options.tolerance)
    except Exception as error:
        return CompileOutcome(reason=f"the check could not run: {type(error).__name__}: {error}")
    if not result.passed:
        return CompileOutcome(reason=result.reason(), check=result.as_dict())
    return CompileOutcome(compiled, "", result.as_dict(), from_artifact=stored is not None)


def _checked_sample(model: Any, blocks: list[pd.DataFrame]) -> pd.DataFrame:
    """The blocks' rows as the input check hands them to the model, leaving out rows it
    refuses or the original model cannot predict (the predictor would refuse or fail them
    too). A block that fails whole is tried row by row (its first rows only)."""
    kept = []
    for block in blocks:
        try:
            checked = model.check(block)
            model.estimator.predict(checked)
            kept.append(block)
            continue
        except Exception:
            if len(block) == 1:
                continue
        for position in range(min(len(block), 64)):
            row = block.iloc[[position]]
            try:
                model.estimator.predict(model.check(row))
            except Exception:
                continue
            kept.append(row)
    if not kept:
        return blocks[0].iloc[:0]
    return model.check(pd.concat(kept, ignore_index=True))


def write_graph_files(outcome: CompileOutcome, pickle_digest: str, folder: Path) -> None:
    """`model.onnx` and its record (pickle digest, graph type, check, library versions)."""
    import importlib.metadata

    compiled = outcome.compiled
    (folder / GRAPH_FILE).write_bytes(compiled.graph)
    versions = {
        package: importlib.metadata.version(package)
        for package in ("skl2onnx", "onnxmltools", "onnxruntime")
    }
    record = {
        "model_sha256": pickle_digest,
        "double": compiled.double,
        "check": outcome.check,
        "versions": versions,
    }
    (folder / GRAPH_RECORD_FILE).write_text(json.dumps(record, indent=2))
