"""The prediction core: what a prediction call does, whatever its transport.

A transport's servicer (grpc_services.py) opens a `PredictionCall` and, inside it, resolves the
model once, has its codec decode the request into rows (`DoublesRows` or `Columns`), predicts,
and has its codec encode the result. The call does the rest: refusing new calls while shutting
down, taking the caller's key column (if it names one) off the rows, checking the rows against
the model's input schema, predicting through the batcher, counting and timing the call, turning
any error into its one gRPC status (with the offending columns), and, once the reply is sent,
queueing the result (with each row's key) for the prediction log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

import grpc
import numpy as np

from mlplatform.client.frames import FrameError
from mlplatform.common.input_schema import CheckedRows, Columns, DoublesRows, ProblemType
from mlplatform.common.log_setup import pop_ids, push_ids
from mlplatform.common.model_loading import LoadedModel
from mlplatform.common.prediction_keys import split_key_rows
from mlplatform.common.store import utc_now
from mlplatform.predictor.batching import AdaptiveBatcher
from mlplatform.predictor.errors import (
    BatcherClosedError,
    ModelNotFoundError,
    PredictionFailedError,
    ProbabilitiesUnavailableError,
    ShuttingDownError,
    status_for,
)
from mlplatform.predictor.grpc_errors import abort_with
from mlplatform.predictor.metrics import PredictorMetrics
from mlplatform.predictor.observability import note_prediction
from mlplatform.predictor.prediction_log import PredictionLog
from mlplatform.predictor.reload import ModelSlot

logger = logging.getLogger(__name__)


def new_request_id() -> str:
    """An id for a request that came without one."""
    return uuid.uuid4().hex


@dataclass(frozen=True, eq=False)
class PredictionResult:
    """A request's answer: the model that made it, its rows' predictions, and timing;
    `prediction_keys` holds each row's key when the request named a key column."""

    request_id: str
    model: LoadedModel
    features: CheckedRows
    predictions: np.ndarray
    probabilities: np.ndarray | None
    latency_s: float
    prediction_keys: list[str | None] | None = None
    created_at: datetime = field(default_factory=utc_now)


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

    def _accept(self) -> bool:
        """Counts a call in (see `refuse_new_calls`); False when calls are being refused."""
        if self.metrics is not None:
            self.metrics.in_flight.inc()
        if self._refusing:
            return False
        self._accepted_calls += 1
        self._no_accepted_calls.clear()
        return True

    def _finish(self, call: PredictionCall, status: str) -> None:
        """Counts a call out, with its status and latency."""
        if call.accepted:
            self._accepted_calls -= 1
            if not self._accepted_calls:
                self._no_accepted_calls.set()
        if self.metrics is not None:
            self.metrics.in_flight.dec()
            model = call.served_by
            self.metrics.request_answered(
                call.api,
                model.name if model else self.slot.reference.name,
                model.version if model else "",
                status,
                time.perf_counter() - call.started,
            )

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

    def call(self, api: str, request_id: str, context: grpc.aio.ServicerContext) -> PredictionCall:
        """One prediction call of `api` (`async with`): see `PredictionCall`."""
        return PredictionCall(self, api, request_id, context)

    def log(self, result: PredictionResult) -> None:
        """Queue `result` for the store; call it once the reply is sent. Never blocks."""
        if self.prediction_log is None:
            return
        self.prediction_log.submit(result)


class PredictionCall:
    """One prediction call, from its arrival to its answer (see the module doc).

    Used as `async with`: on the way out it counts and times the call, and either queues the
    result for the prediction log once the reply is sent, or ends the call with the status
    its error maps to.
    """

    def __init__(
        self,
        service: PredictionService,
        api: str,
        request_id: str,
        context: grpc.aio.ServicerContext,
    ) -> None:
        self.service = service
        self.api = api
        self.request_id = request_id
        self.context = context
        self.started = time.perf_counter()
        self.served_by: LoadedModel | None = None
        self.result: PredictionResult | None = None
        self.ids = push_ids(request_id=request_id)
        self.accepted = service._accept()

    async def __aenter__(self) -> PredictionCall:
        return self

    def model(self, requested_name: str = "", requested_version: str = "") -> LoadedModel:
        """The model that serves this call, resolved once (see `PredictionService.model_for`)."""
        if not self.accepted:
            self.service.refused_calls += 1
            raise ShuttingDownError()
        self.served_by = self.service.model_for(requested_name, requested_version)
        return self.served_by

    async def predict(
        self,
        model: LoadedModel,
        rows: DoublesRows | Columns,
        with_probabilities: bool = False,
        key_column: str = "",
    ) -> PredictionResult:
        """Check decoded `rows` against `model`'s input schema and predict them. `key_column`,
        when given, names the caller's key column: taken off the rows first (the model never
        sees it; InvalidInputError naming it when the rows lack it), its keys logged per row."""
        if with_probabilities and model.problem_type is ProblemType.REGRESSION:
            raise ProbabilitiesUnavailableError(model.name)
        keys = None
        if key_column:
            rows, keys = split_key_rows(rows, key_column)
        service = self.service
        features = model.check_rows(rows, service.max_request_rows)
        note_prediction(model, len(features))
        try:
            output = await service.batcher.predict(model, features, with_probabilities)
        except BatcherClosedError:
            raise
        except Exception as error:
            # The caller gets the request id only; the traceback stays here, under that id.
            logger.error(
                "request %s: model %s version %s failed",
                self.request_id, model.name, model.version, exc_info=error,
            )  # fmt: skip
            raise PredictionFailedError(self.request_id) from error
        self.result = PredictionResult(
            request_id=self.request_id,
            model=model,
            features=features,
            predictions=output.predictions,
            probabilities=output.probabilities,
            latency_s=time.perf_counter() - self.started,
            prediction_keys=keys,
        )
        return self.result

    async def __aexit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pop_ids(self.ids)
        if isinstance(error, FrameError) and self.result is not None:
            # The model's output does not travel: the server's fault, not the caller's input.
            logger.error(
                "request %s: cannot encode the model's output", self.request_id, exc_info=error
            )
            error = PredictionFailedError(self.request_id)
        if error is None:
            status = "OK"
        elif isinstance(error, asyncio.CancelledError):
            status = "CANCELLED"
        else:
            status = status_for(error).name
        self.service._finish(self, status)
        if error is None:
            result, service = self.result, self.service
            if result is not None and service.prediction_log is not None:
                # Logged once the reply is sent, so the store never adds to the caller's latency.
                self.context.add_done_callback(lambda _context: service.log(result))
        elif isinstance(error, Exception):
            await abort_with(self.context, error, self.request_id)
