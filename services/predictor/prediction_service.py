"""What a prediction request does, apart from its transport.

Both gRPC APIs (mlplatform.v1.Predictor and KServe V2) decode their message into a DataFrame and
call `PredictionService.predict`: pick the served model, check the input against its signature,
predict through the batcher, count and time the request. After the reply is sent, the
transport hands the result to `log`, which queues it for the store without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlplatform.common.input_schema import CheckedRows, Columns, ProblemType
from mlplatform.common.log_setup import pop_ids, push_ids
from mlplatform.common.model_loading import LoadedModel
from mlplatform.common.store import utc_now
from mlplatform.predictor.batching import AdaptiveBatcher, BatcherClosedError
from mlplatform.predictor.errors import (
    ModelNotFoundError,
    PredictionFailedError,
    ProbabilitiesUnavailableError,
    ShuttingDownError,
    status_for,
)
from mlplatform.predictor.metrics import PredictorMetrics
from mlplatform.predictor.observability import note_prediction
from mlplatform.predictor.prediction_log import LoggedRequest, PredictionLog
from mlplatform.predictor.reload import ModelSlot

logger = logging.getLogger(__name__)


def new_request_id() -> str:
    """An id for a request that came without one."""
    return uuid.uuid4().hex


@dataclass(frozen=True, eq=False)
class PredictionResult:
    """A request's answer: the model that made it, its rows' predictions, and timing."""

    request_id: str
    model: LoadedModel
    features: CheckedRows
    predictions: np.ndarray
    probabilities: np.ndarray | None
    latency_s: float


class PredictionService:
    """Serves predictions from the model in a ModelSlot."""

    def __init__(
        self,
        slot: ModelSlot,
        batcher: AdaptiveBatcher,
        max_request_rows: int,
        metrics: PredictorMetrics | None = None,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.slot = slot
        self.batcher = batcher
        self.max_request_rows = max_request_rows
        self.metrics = metrics
        self.prediction_log = prediction_log
        # Shutdown (see `refuse_new_calls`): calls accepted and not yet answered, set when none.
        self._accepted_calls = 0
        self._no_accepted_calls = asyncio.Event()
        self._no_accepted_calls.set()
        self._refusing = False
        #: Calls refused since `refuse_new_calls`; the server watches it settle before stopping.
        self.refused_calls = 0

    def refuse_new_calls(self) -> None:
        """From now on new calls get UNAVAILABLE; those already accepted still finish."""
        self._refusing = True

    async def wait_for_accepted_calls(self, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) until every accepted call is answered; True if all were."""
        if self._no_accepted_calls.is_set():
            return True
        try:
            await asyncio.wait_for(self._no_accepted_calls.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def model_for(self, requested_name: str, requested_version: str = "") -> LoadedModel:
        """The served model, if it is the one asked for (an empty name or version matches)."""
        model = self.slot.require()
        if requested_name and requested_name != model.name:
            raise ModelNotFoundError(requested_name, model.name)
        if requested_version and requested_version != model.version:
            raise ModelNotFoundError(
                f"{requested_name or model.name} version {requested_version}",
                f"{model.name} version {model.version}",
            )
        return model

    async def predict(
        self,
        decode_features: Callable[[], Columns],
        request_id: str,
        model_name: str = "",
        model_version: str = "",
        include_probabilities: bool = False,
        api: str = "Predict",
        checked_rows: Callable[[LoadedModel], CheckedRows | None] | None = None,
    ) -> PredictionResult:
        """Predict the rows `decode_features` yields; typed errors map to one gRPC status.

        Decoding runs inside so that undecodable input is counted like any other refusal.
        `checked_rows(model)`, when given, is a transport's shortcut: the rows already known to
        pass `model`'s check, or None to decode and check them.
        """
        started = time.perf_counter()
        model: LoadedModel | None = None
        status = "OK"
        ids = push_ids(request_id=request_id)
        if self.metrics is not None:
            self.metrics.in_flight.inc()
        accepted = not self._refusing
        if accepted:
            self._accepted_calls += 1
            self._no_accepted_calls.clear()
        try:
            if not accepted:
                self.refused_calls += 1
                raise ShuttingDownError()
            model = self.model_for(model_name, model_version)
            if include_probabilities and model.problem_type is ProblemType.REGRESSION:
                raise ProbabilitiesUnavailableError(model.name)
            features = checked_rows(model) if checked_rows is not None else None
            if features is None or len(features) > self.max_request_rows:
                features = model.check_rows(decode_features(), self.max_request_rows)
            note_prediction(model, len(features))
            output = await self._predict_rows(model, features, include_probabilities, request_id)
            return PredictionResult(
                request_id=request_id,
                model=model,
                features=features,
                predictions=output[0],
                probabilities=output[1],
                latency_s=time.perf_counter() - started,
            )
        except asyncio.CancelledError:
            status = "CANCELLED"
            raise
        except Exception as error:
            status = status_for(error).name
            raise
        finally:
            pop_ids(ids)
            if accepted:
                self._accepted_calls -= 1
                if not self._accepted_calls:
                    self._no_accepted_calls.set()
            if self.metrics is not None:
                self.metrics.in_flight.dec()
                self.metrics.request_answered(
                    api,
                    model.name if model else self.slot.reference.name,
                    model.version if model else "",
                    status,
                    time.perf_counter() - started,
                )

    async def _predict_rows(
        self,
        model: LoadedModel,
        features: CheckedRows,
        include_probabilities: bool,
        request_id: str,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        try:
            output = await self.batcher.predict(model, features, include_probabilities)
        except BatcherClosedError:
            raise
        except Exception as error:
            # The caller gets the request id only; the traceback stays here, under that id.
            logger.error(
                "request %s: model %s version %s failed",
                request_id,
                model.name,
                model.version,
                exc_info=error,
            )
            raise PredictionFailedError(request_id) from error
        return output.predictions, output.probabilities

    def log(self, result: PredictionResult) -> None:
        """Queue `result` for the store; call it once the reply is sent. Never blocks."""
        if self.prediction_log is None:
            return
        self.prediction_log.submit(
            LoggedRequest(
                request_id=result.request_id,
                model_name=result.model.name,
                model_version=result.model.version,
                features=result.features,
                predictions=result.predictions,
                probabilities=result.probabilities,
                class_names=result.model.class_names,
                latency_ms=result.latency_s * 1000.0,
                created_at=utc_now(),
            )
        )
