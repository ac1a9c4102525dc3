"""The registered model's compiled graph, logged beside it so predictors need not compile it.

The version is loaded as a predictor loads it (`--compile auto`: translated, compiled and
checked on its baseline sample), and `model.onnx` with its record (the digest of the pickle it
came from, the check's result) is logged into the version's model artifacts. A predictor uses
the graph only when the digest matches the pickle it loads, and checks it again. A model that
does not compile is still registered: the step's findings say why, and predictors serve it by
scikit-learn.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from mlplatform.common.compiled_serving import (
    CompileMode,
    CompileOptions,
    CompileOutcome,
    file_digest,
    write_graph_files,
)
from mlplatform.common.model_loading import ModelReference, load_model

logger = logging.getLogger(__name__)


def _logged_model_id(model_version: Any) -> str | None:
    """The logged model a version was registered from (MLflow 3 leaves `model_id` empty on
    some stores; the version's `models:/<id>` source names it too)."""
    model_id = getattr(model_version, "model_id", None)
    source = model_version.source or ""
    if not model_id and source.startswith("models:/m-"):
        model_id = source.removeprefix("models:/")
    return model_id or None


def log_compiled_graph(client: Any, tracking_uri: str, model_name: str, version: str) -> str:
    """Compile registered `model_name` `version` and log its graph beside it; returns what
    happened, for the step's findings. Never raises: the model is registered already."""
    import mlflow.artifacts

    try:
        model_id = _logged_model_id(client.get_model_version(model_name, version))
        if not model_id:
            return "skipped: the version has no logged model to hold the graph"
        model = load_model(
            ModelReference(model_name, version=version),
            tracking_uri,
            version,
            client,
            compile_options=CompileOptions(CompileMode.AUTO),
        )
        if model.compiled is None:
            return f"not compiled (served by scikit-learn): {model.compile_reason}"
        with tempfile.TemporaryDirectory(prefix="mlp-graph-") as folder:
            pickled = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{client.get_model_version_download_uri(model_name, version)}"
                "/model.pkl",
                dst_path=folder,
                tracking_uri=tracking_uri,
            )
            digest = file_digest(Path(pickled))
            graph_folder = Path(folder) / "graph"
            graph_folder.mkdir()
            outcome = CompileOutcome(model.compiled, "", model.compile_check)
            write_graph_files(outcome, digest, graph_folder)
            client.log_model_artifacts(model_id, str(graph_folder))
    except Exception as error:
        logger.exception("compiling %s version %s failed", model_name, version)
        return f"failed ({type(error).__name__}: {error}); predictors compile it themselves"
    rows = (model.compile_check or {}).get("rows", 0)
    graph_type = "double" if model.compiled.double else "float32"
    return f"model.onnx logged ({graph_type} graph, checked on {rows} rows)"
