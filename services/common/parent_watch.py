"""Child processes of the platform end with their parent.

A child's pipe to its parent does not tell it that the parent died (a pool child holds both
ends of its task pipe), so a daemon thread watches the parent's
sentinel instead: no orphan lingers after the parent is SIGKILLed.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading


def exit_with_parent(exit_code: int = 1) -> None:
    """From a multiprocessing child: end this process as soon as its parent dies."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(exit_code)

    threading.Thread(target=watch, name="mlp-parent-watch", daemon=True).start()
