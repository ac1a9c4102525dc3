"""The model in a process of its own (`mlp predictor --model-process`).

Why: with the model on the event loop's thread, the two share one core and one GIL, and the
loop's work between model calls evicts the model's caches. In a process of its own the model
keeps a core and its caches to itself, while the loop decodes the next calls and answers the
last ones on the other core (bench/PREDICTOR.md has what it measured).

Protocol, over one duplex pipe, one exchange at a time (the batcher awaits each batch):
- ("load", key, cloudpickled model) -> ("loaded", None, []) once the child holds the model under
  `key` and has warmed it up; a model travels once per child (cloudpickle, as MLflow saved
  it: functions may travel by value) and the child keeps the last two (during a hot swap both
  may be in use);
- ("predict", key, parts, flags, max_batch_size) -> ("ok", outputs, calls), or
  ("error", message, calls) when the model raised; `calls` are (rows, seconds) per model call.

The child ignores SIGINT and SIGTERM (the predictor shuts it down after its in-flight calls)
and exits when the predictor dies, even by SIGKILL. When the child dies, the exchange in
progress fails and the next one starts a new child.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import pickle
import signal
import traceback
from collections import OrderedDict
from typing import Any

import cloudpickle

from mlplatform.common.heap import freeze_long_lived
from mlplatform.common.input_schema import CheckedRows
from mlplatform.common.model_loading import LoadedModel, ModelOutput
from mlplatform.common.parent_watch import exit_with_parent
from mlplatform.predictor.model_call import predict_together, warm_up

logger = logging.getLogger(__name__)

#: Models the child keeps: the one being served and, during a hot swap, the one before it.
_MODELS_KEPT = 2

ModelCalls = list[tuple[int, float]]


class ModelProcessError(RuntimeError):
    """The model process failed a call: the model raised there, or the process died."""


# --- the child -------------------------------------------------------------------------------


def serve_models(connection: multiprocessing.connection.Connection) -> None:
    """The child's loop: answer exchanges until the pipe closes or "stop" arrives."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent(exit_code=0)
    models: OrderedDict[int, LoadedModel] = OrderedDict()
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "stop":
            return
        calls: ModelCalls = []
        try:
            if kind == "load":
                _, key, pickled = message
                model = pickle.loads(pickled)
                models[key] = model
                while len(models) > _MODELS_KEPT:
                    models.popitem(last=False)
                warm_up(model)
                freeze_long_lived(full_collection=False)  # see common.heap
                connection.send(("loaded", None, calls))
                continue
            _, key, parts, flags, max_batch_size = message
            outputs = predict_together(
                models[key],
                parts,
                flags,
                max_batch_size,
                lambda rows, seconds, calls=calls: calls.append((rows, seconds)),
            )
            connection.send(("ok", outputs, calls))
        except Exception as error:
            summary = f"{type(error).__name__}: {error}"
            connection.send(("error", f"{summary}\n{traceback.format_exc()}", calls))


# --- the parent ------------------------------------------------------------------------------


class ModelProcess:
    """Runs `predict_together` in a child process; start it before use, close it after."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._connection: multiprocessing.connection.Connection | None = None
        self._in_child: OrderedDict[int, LoadedModel] = OrderedDict()
        self._lock = asyncio.Lock()
        self._broken = False

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> int:
        """Start the child (about a second: it imports pandas and scikit-learn); its pid."""
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=serve_models, args=(theirs,), name="mlp-model", daemon=True
        )
        process.start()
        theirs.close()
        self._process, self._connection = process, ours
        self._in_child.clear()
        self._broken = False
        return process.pid

    async def load(self, model: LoadedModel) -> None:
        """Send `model` to the child and warm it up there, ahead of its first batch."""
        async with self._lock:
            await self._ensure_loaded(model)

    async def predict_together(
        self,
        model: LoadedModel,
        parts: list[CheckedRows],
        with_probabilities: list[bool],
        max_batch_size: int,
    ) -> tuple[list[ModelOutput], ModelCalls]:
        """`model_call.predict_together` in the child; ModelProcessError when it fails there."""
        async with self._lock:
            await self._ensure_loaded(model)
            kind, payload, calls = await self._exchange(
                ("predict", id(model), parts, with_probabilities, max_batch_size)
            )
        if kind != "ok":
            raise ModelProcessError(f"the model failed in the model process: {payload}")
        return payload, calls

    async def _ensure_loaded(self, model: LoadedModel) -> None:
        if self._broken or self._process is None or not self._process.is_alive():
            await asyncio.to_thread(self._restart)
        key = id(model)
        if key in self._in_child:
            self._in_child.move_to_end(key)
            return
        # cloudpickle: models loaded from MLflow may hold functions pickled by value.
        pickled = cloudpickle.dumps(model)
        kind, payload, _ = await self._exchange(("load", key, pickled))
        if kind != "loaded":
            raise ModelProcessError(f"the model process could not take the model: {payload}")
        self._in_child[key] = model  # kept here too, so its id is not reused meanwhile
        while len(self._in_child) > _MODELS_KEPT:
            self._in_child.popitem(last=False)

    def _restart(self) -> None:
        if self._process is not None:
            logger.error("the model process (pid %s) failed; starting a new one", self._process.pid)
            self._discard()
        self.start()

    async def _exchange(self, message: tuple[Any, ...]) -> tuple[str, Any, ModelCalls]:
        """Send `message` and wait, without blocking the loop, for the child's answer."""
        connection = self._connection
        assert connection is not None
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[str, Any, ModelCalls]] = loop.create_future()

        def readable() -> None:
            if answer.done():
                return
            try:
                answer.set_result(connection.recv())
            except (EOFError, OSError) as error:
                self._broken = True
                answer.set_exception(ModelProcessError(f"the model process died: {error!r}"))

        try:
            connection.send(message)
        except (BrokenPipeError, OSError) as error:
            self._broken = True
            raise ModelProcessError(f"the model process died: {error!r}") from error
        loop.add_reader(connection.fileno(), readable)
        try:
            return await answer
        except asyncio.CancelledError:
            self._broken = True  # its answer would be read as the next exchange's
            raise
        finally:
            loop.remove_reader(connection.fileno())

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the child after the exchange in progress; kill it if it does not stop."""
        if self._process is None:
            return
        try:
            assert self._connection is not None
            self._connection.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        self._process.join(timeout_s)
        self._discard()

    def _discard(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.is_alive():
            process.kill()
            process.join(5)
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._in_child.clear()
