"""Hot reload: follow the registry alias and swap in each new version without dropping requests.

A new version is loaded and warmed in a background thread, then swapped in with one reference
assignment: requests already holding the old model finish on it, new ones get the new one, and
nothing waits on a lock. Each swap is recorded in the store's serving history. A version that
fails to load, fails its warm-up on its own input example, or lacks the tag
`--require-model-tag` names, is not swapped in: the current model keeps serving, the reason is
logged, and the watcher tries again at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mlplatform.common.compiled_serving import CompileOptions
from mlplatform.common.log_setup import RepeatedMessages
from mlplatform.common.model_loading import (
    LoadedModel,
    ModelLoadError,
    ModelReference,
    load_model,
    registry_client,
    resolve_version,
)
from mlplatform.common.model_tags import ModelTagRequirement
from mlplatform.common.store import Store, utc_now
from mlplatform.predictor.errors import ModelNotLoadedError
from mlplatform.predictor.model_call import warm_up

logger = logging.getLogger(__name__)

#: Hears of each swap (the new model, the one it replaces), once the new model serves.
SwapListener = Callable[[LoadedModel, LoadedModel | None], Awaitable[None]]


class ModelSlot:
    """The model being served. Swapping is a single reference assignment (atomic in Python)."""

    def __init__(self, reference: ModelReference) -> None:
        self.reference = reference
        #: The model new requests get, or None before the first load.
        self.current: LoadedModel | None = None

    def require(self) -> LoadedModel:
        """The current model; ModelNotLoadedError before the first load."""
        model = self.current
        if model is None:
            raise ModelNotLoadedError(str(self.reference))
        return model


class ModelWatcher:
    """Loads the model, then follows its alias, swapping versions into a ModelSlot."""

    def __init__(
        self,
        slot: ModelSlot,
        tracking_uri: str | None,
        interval_s: float,
        store: Store,
        on_swap: SwapListener,
        on_load_outcome: Callable[[str], None],
        required_tag: ModelTagRequirement | None,
        compile_options: CompileOptions,
    ) -> None:
        self.slot = slot
        self.compile_options = compile_options
        self.required_tag = required_tag
        self.tracking_uri = tracking_uri
        self.interval_s = interval_s
        self._store = store
        self._on_swap = on_swap
        self._on_load_outcome = on_load_outcome
        self._client: Any = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failed_version: str | None = None
        #: "Not loaded" repeats at every poll while waiting for a first version: once a minute.
        self._repeats = RepeatedMessages(logger)

    def start(self) -> None:
        """Start polling on the running loop (the first check runs at once)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mlp-model-watcher")

    async def stop(self) -> None:
        """Stop polling at once; a load in progress finishes in its thread and is discarded."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check_now(self) -> bool:
        """Resolve the alias once; load, warm and swap if it moved. True when swapped."""
        reference = self.slot.reference
        if self._client is None:
            self._client = await asyncio.to_thread(registry_client, self.tracking_uri)
        version = await asyncio.to_thread(resolve_version, self._client, reference)
        current = self.slot.current
        if current is not None and current.version == version:
            return False
        if version == self._failed_version:
            return False  # it failed its warm-up, which is deterministic: wait for a new version
        try:
            # Compiled by ONNX Runtime when compile_options allow and the check passes.
            model = await asyncio.to_thread(
                load_model,
                reference,
                self.tracking_uri,
                version,
                self._client,
                self.required_tag,
                self.compile_options,
            )
        except Exception:
            self._on_load_outcome("failed")
            raise
        try:
            await asyncio.to_thread(warm_up, model)
        except Exception as error:
            self._failed_version = version
            self._on_load_outcome("failed")
            raise ModelLoadError(
                f"{reference} (version {version})",
                f"the model fails on its own input example: {error!r}",
            ) from error
        self._failed_version = None
        if self._stopping.is_set():
            return False
        previous, self.slot.current = self.slot.current, model
        self._on_load_outcome("loaded")
        logger.info(
            "serving %s version %s by %s (was %s)",
            reference,
            version,
            model.backend,
            previous.version if previous else "nothing",
        )
        await self._record_serving(model)
        await self._on_swap(model, previous)
        return True

    async def _record_serving(self, model: LoadedModel) -> None:
        try:
            await asyncio.to_thread(
                self._store.record_serving, model.name, model.version, model.alias, utc_now()
            )
        except Exception:  # history is worth having, not worth failing a swap for
            logger.warning("could not record serving history of %s", model.name, exc_info=True)

    async def _run(self) -> None:
        pinned = self.slot.reference.version is not None
        while not self._stopping.is_set():
            try:
                await self.check_now()
            except ModelLoadError as error:
                self._repeats.warning("model not (re)loaded: %s", error)
            except Exception:
                logger.exception("model not (re)loaded: unexpected error")
            if pinned and self.slot.current is not None:
                return  # NAME/VERSION never moves
            with contextlib.suppress(TimeoutError):  # the poll interval, cut short by stop()
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
