"""`amqps://` connections, on a RabbitMQ node of this test's own with a TLS listener on
loopback that requires client certificates (mutual TLS), certificates from a throwaway CA.

Messages published over TLS by the platform's client code are consumed back over TLS; a
plain-text connection to the TLS port fails; a client without a certificate, or one that does
not trust the broker's CA, is refused.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pika
import pika.exceptions
import pytest

from mlplatform.client import messaging
from mlplatform.client.batches import submit_batch
from mlplatform.client.tls import TlsError, TlsFiles
from mlplatform.v1 import messages_pb2
from tests.support.certificates import Pki
from tests.support.rabbitmq_node import RabbitNode, TlsListener, rabbitmq_node


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[RabbitNode]:
    listener = TlsListener(pki.ca, pki.server.cert, pki.server.key, require_client_cert=True)
    with rabbitmq_node(tmp_path_factory.mktemp("rabbit-tls"), tls=listener) as node:
        yield node


def amqps_url(node: RabbitNode) -> str:
    return f"amqps://guest:guest@localhost:{node.tls_port}/%2F"


def client_tls(pki: Pki) -> TlsFiles:
    return TlsFiles(ca=str(pki.ca), cert=str(pki.client.cert), key=str(pki.client.key))


def _connect(url: str, tls: TlsFiles | None = None) -> pika.BlockingConnection:
    parameters = messaging.connection_parameters(url, tls)
    parameters.connection_attempts = 1
    parameters.socket_timeout = 5
    return pika.BlockingConnection(parameters)


def test_publish_and_consume_over_amqps(
    tls_node: RabbitNode, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TLS files come from MLP_BROKER_TLS_*, as every service and `mlp` read them."""
    monkeypatch.setenv(messaging.BROKER_TLS_CA_ENV, str(pki.ca))
    monkeypatch.setenv(messaging.BROKER_TLS_CERT_ENV, str(pki.client.cert))
    monkeypatch.setenv(messaging.BROKER_TLS_KEY_ENV, str(pki.client.key))
    queue = messaging.WorkQueue("tls.batches")
    rows = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    submitted = submit_batch(rows, "model@production", broker_url=amqps_url(tls_node), queue=queue)
    with messaging.open_channel(amqps_url(tls_node)) as (channel, _version):
        for method, _properties, body in channel.consume(queue.name, inactivity_timeout=10):
            assert method is not None, "the message published over TLS did not arrive"
            request = messages_pb2.BatchPredictionRequest.FromString(body)
            channel.basic_ack(method.delivery_tag)
            break
        channel.cancel()
    assert request.batch_id == submitted.batch_id


def test_explicit_tls_files_work_without_the_environment(tls_node: RabbitNode, pki: Pki) -> None:
    queue = messaging.WorkQueue("tls.explicit")
    rows = pd.DataFrame({"x": [4.0]})
    url, tls = amqps_url(tls_node), client_tls(pki)
    submitted = submit_batch(rows, "m@production", broker_url=url, broker_tls=tls, queue=queue)
    with messaging.open_channel(url, tls) as (channel, _version):
        method, _properties, body = channel.basic_get(queue.name, auto_ack=True)
    assert method is not None
    assert messages_pb2.BatchPredictionRequest.FromString(body).batch_id == submitted.batch_id


def test_a_plain_text_connection_to_the_tls_port_fails(tls_node: RabbitNode) -> None:
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        _connect(f"amqp://guest:guest@127.0.0.1:{tls_node.tls_port}/%2F").close()


@pytest.mark.parametrize("client", ["no certificate", "another CA's certificate"])
def test_a_client_without_the_right_certificate_is_refused(
    tls_node: RabbitNode, pki: Pki, client: str
) -> None:
    if client == "no certificate":
        tls = TlsFiles(ca=str(pki.ca))
    else:
        tls = TlsFiles(ca=str(pki.ca), cert=str(pki.stranger.cert), key=str(pki.stranger.key))
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        _connect(amqps_url(tls_node), tls).close()


def test_a_client_that_does_not_trust_the_brokers_ca_is_told_so(
    tls_node: RabbitNode, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(messaging.BROKER_TLS_CA_ENV, str(pki.other_ca))
    monkeypatch.setenv(messaging.BROKER_TLS_CERT_ENV, str(pki.client.cert))
    monkeypatch.setenv(messaging.BROKER_TLS_KEY_ENV, str(pki.client.key))
    with (
        pytest.raises(TlsError, match=r"certificate failed verification .*MLP_BROKER_TLS_CA"),
        messaging.open_channel(amqps_url(tls_node)),
    ):
        pass


def test_tls_files_with_a_plain_text_url_are_refused(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(messaging.BROKER_TLS_CA_ENV, str(pki.ca))
    with pytest.raises(TlsError, match="not amqps://"):
        messaging.connection_parameters("amqp://guest:guest@127.0.0.1:5672/%2F")
