"""Keep Python's cyclic garbage collector off what a service holds for its whole life.

Why: a served model, its libraries and their modules are hundreds of thousands of objects
(333,000 in a predictor serving a scaler + 100-tree forest). Python's full collection walks
every one of them, holding the GIL: measured in that predictor under 8 concurrent callers, one
full collection every few thousand calls, 300 ms each, during which no call was answered.
`gc.freeze()` moves every object alive now into a permanent generation that collections skip
(after it, the same full collection took 2 ms). Reference counting still frees frozen objects;
only cyclic garbage among them would stay, and a dropped model version leaves none for the
models measured (0 unreachable objects after dropping the forest).

The batch inferer does not freeze: measured with `bench/bench_inferer.py`, every full
collection of an inferer's life (five) ran while it started and loaded its model, none in the
100,000-row batch after that.
"""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger(__name__)


def freeze_long_lived(full_collection: bool) -> int:
    """Collect, then freeze everything alive; returns how many objects are frozen in all.

    Call it once a model is loaded and warmed. `full_collection` first collects every
    generation: right for startup, before serving, when nobody waits; later (a hot swap while
    serving) only the young generations are collected, which takes milliseconds, not the
    hundreds a full collection would stall the calls in flight for.
    """
    started = time.perf_counter()
    if full_collection:
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.debug(
        "froze %d long-lived objects in %.0f ms", frozen, (time.perf_counter() - started) * 1000
    )
    return frozen
