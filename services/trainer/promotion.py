"""Champion/challenger: does the newly registered version take the alias?

The challenger is the run's winner, scored on the hold-out set PyCaret kept aside, before
finalizing (a finalized model has seen the hold-out). The champion is the version the alias
points at, scored on the same rows with the same PyCaret metric code. The alias moves when
the challenger does strictly better on the main metric, when no version holds the alias, or
when the champion cannot score the rows (other columns, a broken artifact): then the
challenger wins and the reason says so. A tie keeps the champion.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import mlflow.sklearn
from mlflow.tracking import MlflowClient

from mlplatform.client import pycaret_catalog as catalog
from mlplatform.trainer.pycaret_adapter import TrainingSession
from mlplatform.v1 import pipeline_pb2

logger = logging.getLogger(__name__)

ALWAYS = "always"
IF_BETTER = "if_better"
_POLICY_NAMES = {
    pipeline_pb2.PROMOTE_POLICY_UNSPECIFIED: IF_BETTER,
    pipeline_pb2.PROMOTE_POLICY_ALWAYS: ALWAYS,
    pipeline_pb2.PROMOTE_POLICY_IF_BETTER: IF_BETTER,
}
_REASON_LIMIT = 300


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the alias moves to the new version, and on what evidence."""

    policy: str
    promote: bool
    reason: str
    metric: str
    challenger_score: float | None = None
    champion_version: str | None = None
    champion_score: float | None = None

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    def as_tags(self) -> dict[str, str]:
        """MLflow tags of the run (tag values are text)."""
        tags = {
            "mlp.promotion.policy": self.policy,
            "mlp.promotion.decision": "promoted" if self.promote else "kept_champion",
            "mlp.promotion.reason": self.reason,
            "mlp.promotion.metric": self.metric,
        }
        if self.challenger_score is not None:
            tags["mlp.promotion.challenger_score"] = f"{self.challenger_score:.6g}"
        if self.champion_version is not None:
            tags["mlp.promotion.champion_version"] = self.champion_version
        if self.champion_score is not None:
            tags["mlp.promotion.champion_score"] = f"{self.champion_score:.6g}"
        return tags


def policy_name(policy: int) -> str:
    return _POLICY_NAMES.get(policy, IF_BETTER)


def champion_version(client: MlflowClient, model_name: str, alias: str) -> str | None:
    """The version `alias` points at, if any."""
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except mlflow.exceptions.MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def decide(
    *,
    policy: int,
    client: MlflowClient,
    model_name: str,
    alias: str,
    metric: catalog.Metric,
    challenger_score: float | None,
    session: TrainingSession,
    own_version: str | None,
) -> PromotionDecision:
    """Scores the champion against the challenger when the policy asks for it."""
    name = policy_name(policy)
    base = {"policy": name, "metric": metric.name, "challenger_score": challenger_score}
    current = champion_version(client, model_name, alias)
    if current is None:
        return PromotionDecision(promote=True, reason=f"no version holds @{alias} yet", **base)
    base["champion_version"] = current
    if name == ALWAYS:
        return PromotionDecision(promote=True, reason="promote is 'always'", **base)
    if own_version is not None and own_version == current:
        return PromotionDecision(
            promote=True, reason="this pipeline's version already holds the alias", **base
        )
    champion_score, problem = _score_champion(client, session, model_name, current, metric)
    base["champion_score"] = champion_score
    if problem is not None:
        return PromotionDecision(
            promote=True,
            reason=f"champion v{current} cannot score the hold-out set: {problem}",
            **base,
        )
    if challenger_score is None:
        return PromotionDecision(
            promote=False, reason=f"the new model has no hold-out {metric.name}", **base
        )
    better = (
        challenger_score > champion_score
        if metric.greater_is_better
        else challenger_score < champion_score
    )
    comparison = f"{metric.name} {challenger_score:.4f} vs champion v{current} {champion_score:.4f}"
    if better:
        return PromotionDecision(promote=True, reason=f"better: {comparison}", **base)
    return PromotionDecision(promote=False, reason=f"not better: {comparison}", **base)


def _score_champion(
    client: MlflowClient,
    session: TrainingSession,
    model_name: str,
    version: str,
    metric: catalog.Metric,
) -> tuple[float | None, str | None]:
    """The champion's hold-out score, or why it has none."""
    try:
        # Through this client's registry, not the process-wide tracking URI.
        location = client.get_model_version_download_uri(model_name, version)
        pipeline = mlflow.sklearn.load_model(location)
        scores = session.holdout_metrics_of(pipeline, session.holdout_data())
    except Exception as error:  # other columns, another problem type, an unloadable artifact
        logger.info("champion %s v%s cannot score: %s", model_name, version, error)
        return None, f"{type(error).__name__}: {error}"[:_REASON_LIMIT]
    score = scores.get(metric.display_name)
    if score is None:
        return None, f"PyCaret computed no {metric.name} for it"
    return score, None
