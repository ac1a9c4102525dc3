"""Bad input through a real gateway in front of a real predictor: each case gets a 4xx in the
one error shape, naming what is wrong.

- `Infinity` (JSON literals Python and MLflow clients write) and `inf` in CSV: 400 naming the
  column and row, not a 500 from a model that raised;
- 10,000 unknown columns, or one column named with 100 kB of text: 400 naming them, where the
  predictor's status used to overflow gRPC's metadata limit (a 429 that lost the error);
- a body whose Content-Type is not JSON (nor CSV on /invocations): 415, not parsed as JSON.
"""

from __future__ import annotations

import grpc
import httpx
import pytest
from gateway_data import credit_fraud_features
from gateway_harness import GatewayUnderTest

BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


def error_body(response: httpx.Response, http_status: int) -> dict[str, object]:
    """The error body, checked for the gateway's one shape."""
    assert response.status_code == http_status, response.text
    body = response.json()
    assert set(body) == {"code", "status", "message", "details", "request_id"}
    assert body["status"] == "INVALID_ARGUMENT"
    assert body["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text and "Error:" not in response.text
    return body


def violations(body: dict[str, object]) -> list[tuple[str, str]]:
    [detail] = body["details"]  # type: ignore[misc]
    assert detail["@type"] == BAD_REQUEST_TYPE
    return [(v["field"], v["description"]) for v in detail["fieldViolations"]]


def row_text(values: dict[str, str]) -> str:
    """One JSON row object of the sample's first row, with some values written as given."""
    row = {name: repr(float(value)) for name, value in credit_fraud_features().iloc[0].items()}
    row.update(values)
    return "{" + ", ".join(f'"{name}": {value}' for name, value in row.items()) + "}"


def post_json_text(gateway: GatewayUnderTest, path: str, text: str) -> httpx.Response:
    return gateway.client.post(
        path, content=text.encode(), headers={"content-type": "application/json"}
    )


# --- infinities -------------------------------------------------------------------------------


@pytest.mark.parametrize(("literal", "shown"), [("Infinity", "inf"), ("-Infinity", "-inf")])
def test_an_infinity_literal_is_400_naming_the_column_and_row(
    gateway: GatewayUnderTest, literal: str, shown: str
) -> None:
    text = '{"records": [' + row_text({}) + ", " + row_text({"V5": literal}) + "]}"
    body = error_body(post_json_text(gateway, "/predict", text), 400)
    expected = f"row 1 holds {shown}; expected a finite double"
    assert body["message"] == f"column 'V5': {expected}"
    assert violations(body) == [("V5", expected)]


def test_an_infinity_in_an_mlflow_request_or_a_csv_body_is_400(gateway: GatewayUnderTest) -> None:
    columns = list(credit_fraud_features().columns)
    values = [repr(float(value)) for value in credit_fraud_features().iloc[0]]
    values[columns.index("Amount")] = "Infinity"
    split = (
        '{"dataframe_split": {"columns": ['
        + ", ".join(f'"{name}"' for name in columns)
        + "], "
        + '"data": [['
        + ", ".join(values)
        + "]]}}"
    )
    body = error_body(post_json_text(gateway, "/invocations", split), 400)
    assert violations(body) == [("Amount", "row 0 holds inf; expected a finite double")]
    rows = credit_fraud_features().head(2).astype({"Time": "float64"})
    rows.loc[1, "Time"] = float("-inf")
    response = gateway.client.post(
        "/invocations", content=rows.to_csv(index=False), headers={"content-type": "text/csv"}
    )
    assert violations(error_body(response, 400)) == [
        ("Time", "row 1 holds -inf; expected a finite double")
    ]


# --- errors naming very many columns, or very long names --------------------------------------


def test_ten_thousand_unknown_columns_are_400_naming_the_first_and_counting_the_rest(
    gateway: GatewayUnderTest,
) -> None:
    row = credit_fraud_features().iloc[0].to_dict()
    row.update({f"extra_{index}": 1.0 for index in range(10_000)})
    body = error_body(gateway.client.post("/predict", json={"records": [row]}), 400)
    names = ", ".join(f"'extra_{index}'" for index in range(20))
    assert body["message"] == f"columns {names} and 9980 more: not an input of the model"
    listed = violations(body)
    assert listed[:20] == [(f"extra_{index}", "not an input of the model") for index in range(20)]
    assert listed[20:] == [("inputs", "and 9980 more problems, left out of this list")]


def test_a_100_kb_column_name_is_400_naming_it_cut(gateway: GatewayUnderTest) -> None:
    row = credit_fraud_features().iloc[0].to_dict()
    row["x" * 100_000] = row.pop("V3")
    response = gateway.client.post("/predict", json={"records": [row]})
    body = error_body(response, 400)
    cut = "x" * 63 + "…"
    assert body["message"] == (
        f"column {cut!r}: not an input of the model; column 'V3': missing; expected a double column"
    )
    assert violations(body) == [
        (cut, "not an input of the model"),
        ("V3", "missing; expected a double column"),
    ]
    assert len(response.content) < 2_000


def test_a_long_name_the_gateway_refuses_itself_is_cut_in_the_field(
    gateway: GatewayUnderTest,
) -> None:
    long_name = "z" * 100_000
    response = gateway.client.post("/predict", json={"records": [{long_name: [1.0]}]})
    [(field, description)] = violations(error_body(response, 400))
    assert field == "z" * 63 + "…"
    assert "holds an array" in description


# --- content types ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=latin-1",
        "application/json; format=pandas-split",
    ],
)
def test_a_body_that_is_not_json_is_415_naming_the_accepted_types(
    gateway: GatewayUnderTest, path: str, content_type: str
) -> None:
    valid_json = {"/predict": b'{"records": []}', "/invocations": b'{"inputs": []}'}[path]
    response = gateway.client.post(path, content=valid_json, headers={"content-type": content_type})
    body = error_body(response, 415)
    message = str(body["message"])
    assert message.startswith(f"unsupported content type {content_type!r}")
    assert "application/json" in message
    assert ("text/csv" in message) is (path == "/invocations")
    assert violations(body) == [("Content-Type", message)]
    if content_type == "application/x-www-form-urlencoded":
        assert "curl -d" in message and "-H 'Content-Type: application/json'" in message


def test_csv_is_read_on_invocations_only(gateway: GatewayUnderTest) -> None:
    csv = credit_fraud_features().head(1).to_csv(index=False)
    headers = {"content-type": "text/csv"}
    assert gateway.client.post("/invocations", content=csv, headers=headers).status_code == 200
    error_body(gateway.client.post("/predict", content=csv, headers=headers), 415)


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Content-Type at all: read as JSON
        {"content-type": "application/json"},
        {"content-type": "Application/JSON; Charset=UTF-8"},
        {"content-type": "application/vnd.mlplatform.predict+json"},
    ],
    ids=["none", "json", "json-utf8", "structured-json"],
)
def test_json_bodies_are_read_whatever_json_type_names_them(
    gateway: GatewayUnderTest, headers: dict[str, str]
) -> None:
    row = credit_fraud_features().iloc[0].to_dict()
    for path, document in (
        ("/predict", {"records": [row]}),
        ("/invocations", {"dataframe_records": [row]}),
    ):
        response = gateway.client.post(
            path, content=httpx.Request("POST", "/", json=document).content, headers=headers
        )
        assert response.status_code == 200, (path, response.text)
        assert len(response.json()["predictions"]) == 1
