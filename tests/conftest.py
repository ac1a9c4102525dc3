"""What every test shares: the data roots the trainers of the test session may read, and a
throwaway certificate authority.

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
    previous = os.environ.get("MLP_DATA_ROOTS")
    roots = [str(tmp_path_factory.getbasetemp()), str(REPO / "examples"), "kaggle:"]
    os.environ["MLP_DATA_ROOTS"] = ",".join(roots)
    yield
    if previous is None:
        os.environ.pop("MLP_DATA_ROOTS", None)
    else:
        os.environ["MLP_DATA_ROOTS"] = previous


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA with server and client certificates (and a stranger's), made once."""
    return make_pki(tmp_path_factory.mktemp("pki"))
