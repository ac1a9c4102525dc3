"""Where the inferer's predicted chunks are written: a thread, or a process of their own.

Storing a chunk (encoding it, then the insert) holds the GIL for part of its time. On a
writer thread it competes with the model thread and the job thread (see `worker`) for the GIL;
in a writer process it runs beside them and only the hand-over (a pickle) stays in the worker.
So `mlp inferer` writes from a process; the thread writer is for embedding the handler where a
store object, not a URI, is what there is.

Either way `submit` returns a future of the rows the chunk added, and the handler acks a
part only once every future of it has completed.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from mlplatform.common.parent_watch import exit_with_parent
from mlplatform.common.store import BatchPredictions, Store, open_store

logger = logging.getLogger(__name__)


class ChunkWriter(Protocol):
    """Writes chunks of batch predictions in the background."""

    def submit(self, chunk: BatchPredictions) -> Future[int]: ...

    def close(self) -> None: ...


class ThreadChunkWriter:
    """Writes to `store` from one background thread, in submission order."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inferer-store")

    def submit(self, chunk: BatchPredictions) -> Future[int]:
        return self._executor.submit(self._store.append_batch_predictions, chunk)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


# --- the writer process -------------------------------------------------------------------------

_process_store: Store | None = None


def _open_process_store(store_uri: str) -> None:
    global _process_store
    # A write cut short by the inferer's death is rolled back and redone on redelivery.
    exit_with_parent()
    _process_store = open_store(store_uri)


def _append_in_process(chunk: BatchPredictions) -> int:
    if _process_store is None:  # the initializer always runs first
        raise RuntimeError("the writer process has no store")
    return _process_store.append_batch_predictions(chunk)


class ProcessChunkWriter:
    """Writes to the store at `store_uri` from one child process, in submission order.

    The child is started with `spawn` (forking a process that runs pika's I/O thread is
    unsafe) and opens the store itself. If it dies, the futures in flight fail with
    BrokenProcessPool, which `is_broken_error` recognises; the next `submit` starts a
    new child. The child exits when this process dies.
    """

    def __init__(self, store_uri: str) -> None:
        self._store_uri = store_uri
        self._lock = threading.Lock()
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_open_process_store,
            initargs=(self._store_uri,),
        )

    def warm_up(self) -> int:
        """Starts the child and opens its store now, not on the first chunk; returns the
        child's process id (logged, so an operator can tell the writer from the worker)."""
        pid = self._executor.submit(os.getpid).result()
        logger.info("store writer process %d started", pid)
        return pid

    def submit(self, chunk: BatchPredictions) -> Future[int]:
        with self._lock:
            try:
                return self._executor.submit(_append_in_process, chunk)
            except BrokenProcessPool:
                logger.warning("the store writer process died; starting another")
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._start()
                return self._executor.submit(_append_in_process, chunk)

    def close(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=True)


def is_broken_error(error: BaseException) -> bool:
    """The writer process died under a write: retrying the part (idempotent) is safe."""
    return isinstance(error, BrokenProcessPool)
