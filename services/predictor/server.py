"""Assembles the predictor (gRPC server, batcher, model watcher, prediction log, metrics) and
runs it from start to graceful shutdown.

The server answers at once (health NOT_SERVING) while the model loads; health turns SERVING
with the first model. On SIGTERM (or SIGINT) health goes NOT_SERVING and calls are still served
for `drain_delay_s` (load balancers need that long to see it); then new prediction calls are
refused with UNAVAILABLE while the accepted ones finish (up to `shutdown_grace_s`), the server
stops and queued predictions are written. The refusal comes from our handlers before
`server.stop()` because gRPC cancels the calls it has received but not yet handed to a handler
(they pile up there during every model call): refused, clients see UNAVAILABLE and retry
elsewhere rather than CANCELLED.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2

from mlplatform.common.api_keys import ApiKeys
from mlplatform.common.heap import freeze_long_lived
from mlplatform.common.metrics_endpoint import MetricsEndpoint, serve_metrics
from mlplatform.common.model_loading import LoadedModel, ModelReference
from mlplatform.common.store import Store, open_store
from mlplatform.predictor.batching import AdaptiveBatcher
from mlplatform.predictor.grpc_services import HEALTH_SERVICES, grpc_server
from mlplatform.predictor.metrics import PredictorMetrics
from mlplatform.predictor.prediction_log import PredictionLog
from mlplatform.predictor.prediction_service import PredictionService
from mlplatform.predictor.reload import ModelSlot, ModelWatcher
from mlplatform.predictor.settings import PredictorSettings
from mlplatform.predictor.tls import server_credentials

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class RunningPredictor:
    """A started predictor and its parts; `stop()` shuts it down gracefully."""

    settings: PredictorSettings
    server: grpc.aio.Server
    port: int
    metrics_endpoint: MetricsEndpoint | None
    slot: ModelSlot
    service: PredictionService
    batcher: AdaptiveBatcher
    watcher: ModelWatcher
    health: health.aio.HealthServicer
    metrics: PredictorMetrics
    prediction_log: PredictionLog | None
    #: The store the predictor opened (and closes); None when the caller gave one.
    owned_store: Store | None

    @property
    def metrics_port(self) -> int | None:
        return self.metrics_endpoint.port if self.metrics_endpoint else None

    async def set_health(
        self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType
    ) -> None:
        for service_name in HEALTH_SERVICES:
            await self.health.set(service_name, status)

    async def stop(self) -> None:
        """Graceful shutdown: NOT_SERVING, drain delay, refuse new calls while the accepted
        ones finish, stop the server, flush the prediction log (see the module doc)."""
        settings = self.settings
        loop = asyncio.get_running_loop()
        await self.health.enter_graceful_shutdown()
        if settings.drain_delay_s:
            await asyncio.sleep(settings.drain_delay_s)  # let load balancers see NOT_SERVING
        deadline = loop.time() + settings.shutdown_grace_s
        self.service.refuse_new_calls()
        logger.debug("drain delay over: refusing new calls, finishing the accepted ones")
        await self.watcher.stop()
        if not await self.service.wait_for_accepted_calls(settings.shutdown_grace_s):
            logger.warning(
                "accepted calls still running after %.1f s; they are cancelled",
                settings.shutdown_grace_s,
            )
        await self._refuse_arrived_calls(deadline)
        await self.server.stop(max(deadline - loop.time(), 0.0))
        await self.batcher.close()
        if self.prediction_log is not None:
            await asyncio.to_thread(self.prediction_log.close)
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.stop()
        if self.owned_store is not None:
            await asyncio.to_thread(self.owned_store.close)
        logger.info("predictor stopped")

    async def _refuse_arrived_calls(self, deadline: float) -> None:
        """Lets calls gRPC has already received reach a handler (and be refused) before the
        server stops, which would cancel them: waits until a short window passes with no
        refusal (at most `_MOST_REFUSAL_WAIT_S`: a client that keeps calling must not hold
        the shutdown up), or the deadline."""
        loop = asyncio.get_running_loop()
        deadline = min(deadline, loop.time() + _MOST_REFUSAL_WAIT_S)
        while loop.time() < deadline:
            refused = self.service.refused_calls
            await asyncio.sleep(min(_REFUSAL_QUIET_S, max(deadline - loop.time(), 0.0)))
            if self.service.refused_calls == refused:
                return


#: The server stops once this long passes with no call refused (see `_refuse_arrived_calls`).
_REFUSAL_QUIET_S = 0.05
_MOST_REFUSAL_WAIT_S = 1.0


async def start_predictor(
    settings: PredictorSettings,
    tracking_uri: str | None,
    store_uri: str | None = None,
    store: Store | None = None,
    api_keys: ApiKeys | None = None,
) -> RunningPredictor:
    """Start serving `settings.model`; returns once the port is bound (the model loads after).

    `store` (when given) is used instead of opening `store_uri`; the caller then closes it.
    `api_keys` (default: `MLP_API_KEYS` and `MLP_API_KEYS_FILE`) protect every method but
    health and reflection, each by the scope `mlplatform.common.access` maps it to.
    """
    credentials = server_credentials(settings)  # bad TLS files fail before anything starts
    keys = ApiKeys.from_environment() if api_keys is None else api_keys
    reference = ModelReference.parse(settings.model, settings.default_alias)
    metrics = PredictorMetrics()
    owned_store = None
    if store is None:
        store = owned_store = await asyncio.to_thread(open_store, store_uri)
    prediction_log = None
    if settings.log_predictions:
        prediction_log = PredictionLog(
            store,
            max_buffered_rows=settings.log_buffer_rows,
            flush_rows=settings.log_flush_rows,
            flush_interval_s=settings.log_flush_interval_s,
            on_dropped=metrics.log_dropped_rows.inc,
            on_written=metrics.log_written_rows.inc,
        )
        prediction_log.start()
    batcher = AdaptiveBatcher(
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_batch_wait_ms / 1000.0,
        enabled=settings.batching,
        observer=metrics,
    )
    batcher.start()
    slot = ModelSlot(reference)
    service = PredictionService(slot, batcher, settings.max_request_rows, metrics, prediction_log)

    server, health_servicer, port = grpc_server(
        settings, service, store, keys, metrics, credentials
    )

    async def on_swap(current: LoadedModel, previous: LoadedModel | None) -> None:
        metrics.model_swapped(current, previous)
        # Full collections stop walking the model and the libraries (see common.heap); only
        # the first swap, before any call is served, pays for a full collection.
        freeze_long_lived(full_collection=previous is None)
        if previous is None:
            await running.set_health(health_pb2.HealthCheckResponse.SERVING)

    watcher = ModelWatcher(
        slot,
        tracking_uri,
        settings.reload_interval_s,
        store=store,
        on_swap=on_swap,
        on_load_outcome=lambda outcome: metrics.model_loads.labels(outcome).inc(),
        required_tag=settings.required_tag,
        compile_options=settings.compile_options,
    )
    metrics_endpoint = serve_metrics(metrics.registry, settings.metrics_host, settings.metrics_port)
    running = RunningPredictor(
        settings=settings,
        server=server,
        port=port,
        metrics_endpoint=metrics_endpoint,
        slot=slot,
        service=service,
        batcher=batcher,
        watcher=watcher,
        health=health_servicer,
        metrics=metrics,
        prediction_log=prediction_log,
        owned_store=owned_store,
    )
    await running.set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    watcher.start()
    logger.info(
        "predictor for %s listening on %s:%d%s (metrics on %s)",
        reference,
        settings.host,
        port,
        "" if credentials is None else " over TLS" + (" (mTLS)" if settings.tls_client_ca else ""),
        running.metrics_port if metrics_endpoint else "no port",
    )
    return running


async def serve(
    settings: PredictorSettings, tracking_uri: str | None, store_uri: str | None = None
) -> None:
    """Run the predictor until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start_predictor(settings, tracking_uri, store_uri)
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop_requested.set)
    await stop_requested.wait()
    logger.info("shutting down: health NOT_SERVING, finishing in-flight requests")
    await running.stop()
