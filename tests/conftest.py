"""Fixtures every test folder may use."""

from __future__ import annotations

import pytest

from tests.support.certificates import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA with server and client certificates (and a stranger's), made once."""
    return make_pki(tmp_path_factory.mktemp("pki"))
