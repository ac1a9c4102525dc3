"""A platform-trained model loads where mlplatform is not installed, and names only published
packages as its requirements.

The isolation: the model is loaded by this virtualenv's own interpreter started with `-I -S`
(no site module, so no `.pth` file runs: the editable installs of mlplatform and
mlplatform-client are `.pth` entries and finders, and they are not loaded), and the
virtualenv's site-packages added to `sys.path` by hand. The child process therefore has the
exact pinned ML stack the model's requirements.txt names (the same files a fresh
`pip install -c constraints.txt -r requirements.txt` would bring) and none of our code; it
checks that itself (`mlplatform` must not be importable) and proves the isolation bites: an
object pickled by reference to our module fails to load there. A fresh virtualenv built from
the pins would prove the same at the cost of installing the whole stack (minutes).
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlplatform.client.pipelines import parse_pipeline
from mlplatform.common.model_loading import ModelReference, load_model
from mlplatform.common.store import RunStatus, open_store
from mlplatform.common.transformers import TrigonometryFeatures
from mlplatform.trainer.runner import PipelineRunner
from mlplatform.v1 import messages_pb2
from tests.trainer.conftest import classification_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

REPO = Path(__file__).resolve().parents[2]
UNPUBLISHED = {"mlplatform", "mlplatform-client"}

CHILD = textwrap.dedent(
    """
    import importlib.util, json, pickle, sys
    model_dir, rows_path, by_reference_path, site_packages, out_path = sys.argv[1:]
    sys.path.append(site_packages)
    assert importlib.util.find_spec("mlplatform") is None, "mlplatform is importable"
    try:
        pickle.loads(open(by_reference_path, "rb").read())
        by_reference = "loaded"
    except ModuleNotFoundError as error:
        by_reference = f"ModuleNotFoundError: {error.name}"
    import mlflow.pyfunc, pandas as pd
    model = mlflow.pyfunc.load_model(model_dir)
    predictions = model.predict(pd.read_parquet(rows_path))
    raw = model.get_raw_model()
    # PyCaret wraps each step; the wrapped transformer is what was pickled.
    names = [type(getattr(step, "transformer", step)).__name__ for _, step in raw.steps]
    json.dump(
        {"predictions": [int(p) for p in predictions], "by_reference": by_reference,
         "steps": names, "mlplatform_loaded": any(m.startswith("mlplatform") for m in sys.modules)},
        open(out_path, "w"),
    )
    """
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, fraud_csv: Path) -> dict[str, Any]:
    """A PyCaret pipeline with trigonometry features, trained and registered by the runner."""
    folder = tmp_path_factory.mktemp("portable")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    document = classification_pipeline(
        fraud_csv,
        estimators=("dt",),
        register={},
        model_name="portable",
        extra_features={"trigonometry_features": True},
    )
    submission = messages_pb2.SubmitPipeline(
        pipeline_id="portable-1", definition=parse_pipeline(document)
    )
    with open_store(f"sqlite:///{folder / 'store.db'}") as store:
        record = PipelineRunner(store, tracking_uri).run(submission, worker_id="test")
    assert record.status == RunStatus.SUCCEEDED, record.error
    client = MlflowClient(tracking_uri)
    model_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri("portable", "1"),
        dst_path=str(folder / "model"),
        tracking_uri=tracking_uri,
    )
    rows = pd.read_csv(fraud_csv).drop(columns="Class").head(300)
    return {"tracking_uri": tracking_uri, "model_dir": Path(model_dir), "rows": rows}


def test_requirements_name_only_published_pinned_packages(trained: dict[str, Any]) -> None:
    lines = (trained["model_dir"] / "requirements.txt").read_text().split()
    names = {line.split("==")[0].lower() for line in lines}
    assert not names & UNPUBLISHED, lines
    pins = {
        line.split("==")[0].lower().replace("_", "-"): line.strip()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for line in lines:
        name = line.split("==")[0].lower().replace("_", "-")
        # Every requirement is pinned exactly as our own installs are: what PyPI serves.
        assert pins.get(name, "").lower().replace("_", "-") == line.lower().replace("_", "-")
    assert {"pycaret", "scikit-learn", "cloudpickle"} <= names


def test_the_model_loads_and_predicts_the_same_without_mlplatform(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    rows: pd.DataFrame = trained["rows"]
    rows.to_parquet(tmp_path / "rows.parquet")
    (tmp_path / "by_reference.pickle").write_bytes(pickle.dumps(TrigonometryFeatures()))
    (tmp_path / "child.py").write_text(CHILD)
    site_packages = sysconfig.get_paths()["purelib"]

    finished = subprocess.run(
        [sys.executable, "-I", "-S", str(tmp_path / "child.py"), str(trained["model_dir"]),
         str(tmp_path / "rows.parquet"), str(tmp_path / "by_reference.pickle"),
         site_packages, str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip

    assert finished.returncode == 0, finished.stderr[-3000:]
    child = json.loads((tmp_path / "out.json").read_text())
    # The isolation is real: our module cannot be imported there...
    assert child["by_reference"] == "ModuleNotFoundError: mlplatform"
    assert not child["mlplatform_loaded"]
    # ...and yet the pipeline, our transformer inside, loads and predicts as here.
    assert "TrigonometryFeatures" in child["steps"]
    here = mlflow.pyfunc.load_model(str(trained["model_dir"])).predict(rows)
    assert child["predictions"] == [int(value) for value in here]


def test_the_predictor_and_inferer_load_it_as_before(trained: dict[str, Any]) -> None:
    model = load_model(ModelReference("portable", version="1"), trained["tracking_uri"])
    rows = model.check(trained["rows"])
    output = model.predict(rows, with_probabilities=True)
    assert len(output.predictions) == len(rows) and output.probabilities is not None
    direct = mlflow.pyfunc.load_model(str(trained["model_dir"])).predict(trained["rows"])
    assert [int(value) for value in output.predictions] == [int(value) for value in direct]
