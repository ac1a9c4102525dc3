"""Telling infrastructure faults (worth a later retry) from errors of the work itself."""

from __future__ import annotations

import requests

#: Faults of the infrastructure, not of the job: a broker, store or MLflow server away.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    requests.ConnectionError,
    requests.Timeout,
)


def is_transient(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, is an infrastructure fault.

    MLflow wraps a refused connection in a plain MlflowException ("API request to ...
    failed"), so the chain of causes is what tells a down server from a bad job.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, TRANSIENT_ERRORS):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
