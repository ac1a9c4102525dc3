"""What every test shares: a data folder of the session's own, the data roots the trainers of
the test session may read, and a throwaway certificate authority.

The data folder (MLP_DATA_DIR) is a temporary one, so no test reads or writes the user's
~/.mlplatform (a store there may have been made by another release of the code).

Tests write their data under pytest's temporary folder, which no trainer reads by default
(MLP_DATA_ROOTS: the data folder, ./examples and kaggle:). The variable is set once for the
session, so trainers started in threads, with `mlp train` or as `mlp up` children read it
as an operator's would. Tests of the roots themselves set their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.certificates import Pki, make_pki

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def data_roots_with_test_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    roots = [str(tmp_path_factory.getbasetemp()), str(REPO / "examples"), "kaggle:"]
    values = {
        "MLP_DATA_ROOTS": ",".join(roots),
        "MLP_DATA_DIR": str(tmp_path_factory.mktemp("mlp-data")),
    }
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    yield
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA with server and client certificates (and a stranger's), made once."""
    return make_pki(tmp_path_factory.mktemp("pki"))
