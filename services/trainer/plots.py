"""PyCaret's plots of the models a run keeps, logged as MLflow artifacts.

Which plots: `experiment_config.log_plots` (true/false or a list of PyCaret plot names);
unset means `DEFAULT_PLOTS` for the registered model. A plot the model does not support
(feature importance of a stack, a calibration curve of a model without probabilities) is
skipped and its reason kept as a run tag `mlp.plot_skipped.<plot>`; it never fails a run.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlplatform.client import pycaret_catalog as catalog
from mlplatform.trainer.pycaret_adapter import TrainingSession
from mlplatform.trainer.run_artifacts import log_file_as
from mlplatform.trainer.tracking import PipelineTracking
from mlplatform.v1 import pipeline_pb2

logger = logging.getLogger(__name__)

#: Artifact folder of the registered model's plots on the parent run.
PLOTS_FOLDER = "plots"
_REASON_LIMIT = 500


@dataclass
class PlotOutcome:
    """What plotting one model left: artifact paths logged, plots skipped with the reason."""

    logged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def chosen_plots(config: pipeline_pb2.ExperimentConfig) -> list[str]:
    """The plot names a pipeline asks for; empty when plotting is off."""
    selection = config.log_plots
    if selection.HasField("enabled") and not selection.enabled:
        return []
    return list(selection.plots) or list(catalog.DEFAULT_PLOTS.get(config.problem_type, ()))


def log_model_plots(
    session: TrainingSession,
    model: Any,
    plots: list[str],
    tracking: PipelineTracking,
    artifact_folder: str = PLOTS_FOLDER,
) -> PlotOutcome:
    """Draws each plot of `model` and logs the PNGs under `artifact_folder` of the parent run."""
    outcome = PlotOutcome()
    with tempfile.TemporaryDirectory(prefix="mlp-plots-") as folder:
        for plot in plots:
            plot_folder = Path(folder) / plot
            plot_folder.mkdir()
            try:
                saved = session.save_plot(model, plot, str(plot_folder))
            except Exception as error:  # PyCaret/yellowbrick refusing this model or data
                reason = f"{type(error).__name__}: {error}".strip()[:_REASON_LIMIT]
                logger.info("plot %s skipped: %s", plot, reason)
                outcome.skipped[plot] = reason
                continue
            target = f"{artifact_folder}/{plot}.png"
            log_file_as(tracking, saved, target)
            outcome.logged.append(target)
    if outcome.skipped:
        tracking.set_tags(
            {_skip_tag(artifact_folder, plot): reason for plot, reason in outcome.skipped.items()}
        )
    return outcome


def _skip_tag(artifact_folder: str, plot: str) -> str:
    """`mlp.plot_skipped.auc` for the registered model, `....<folder>.auc` for others."""
    if artifact_folder == PLOTS_FOLDER:
        return f"mlp.plot_skipped.{plot}"
    suffix = artifact_folder.removeprefix(f"{PLOTS_FOLDER}/").replace("/", ".")
    return f"mlp.plot_skipped.{suffix}.{plot}"
