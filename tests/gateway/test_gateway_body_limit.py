"""Bodies over the limit (`--max-body-bytes`) get 413 before they are parsed: a declared
Content-Length over it is refused without reading the body, and a chunked body is counted as
it arrives. The bodies here are not even JSON, which shows nothing parsed them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_harness import GatewayUnderTest, running_gateway
from predictor_harness import PredictorUnderTest

LIMIT = 2048


@pytest.fixture(scope="module")
def small_gateway(
    credit_predictor: PredictorUnderTest, gateway_logs: Path
) -> Iterator[GatewayUnderTest]:
    with running_gateway(
        credit_predictor.address, gateway_logs, "--max-body-bytes", str(LIMIT)
    ) as running:
        yield running


def assert_413(response: object) -> None:
    assert response.status_code == 413, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == "RESOURCE_EXHAUSTED"
    assert str(LIMIT) in body["message"]
    assert body["request_id"] == response.headers["x-request-id"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_a_declared_length_over_the_limit_is_413(
    small_gateway: GatewayUnderTest, path: str
) -> None:
    assert_413(small_gateway.client.post(path, content=b"not json " * 1000))


def test_a_chunked_body_over_the_limit_is_413(small_gateway: GatewayUnderTest) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 512

    # A generator body has no Content-Length: httpx sends it chunked.
    assert_413(small_gateway.client.post("/predict", content=chunks()))


def test_a_body_at_the_limit_is_parsed(small_gateway: GatewayUnderTest) -> None:
    body = b'{"records": []}'.ljust(LIMIT)  # JSON allows trailing blanks
    response = small_gateway.client.post("/predict", content=body)
    assert response.status_code == 400  # parsed, then refused as an empty frame by the model
    assert response.json()["status"] == "INVALID_ARGUMENT"


def test_the_gateway_keeps_serving_after_refusing(
    small_gateway: GatewayUnderTest,
) -> None:
    assert_413(small_gateway.client.post("/predict", content=b"{" * (LIMIT + 1)))
    assert small_gateway.client.get("/readyz").status_code == 200
