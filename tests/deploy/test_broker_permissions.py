"""The broker users of deploy/rabbitmq/definitions.json, on the real local RabbitMQ.

Each role's permissions are set, exactly as the definitions file writes them, on users of this
test only in a virtual host of this test only (so the platform's default queue names can be
used without touching anybody else's), and then exercised through the platform's own code:
every role can do its work, and a role that lacks a permission is stopped with a message
naming the user, the virtual host, the resource and the permission it needs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pika
import pytest

from mlplatform.client import messaging
from mlplatform.client.batches import submit_batch
from mlplatform.client.broker_access import BrokerPermissionError
from mlplatform.client.pipelines import load_pipeline_file
from mlplatform.client.submit import FollowTimeout, submit_pipeline

REPO = Path(__file__).resolve().parents[2]
DEFINITIONS = json.loads((REPO / "deploy" / "rabbitmq" / "definitions.json").read_text())
PASSWORD = "test-password"
RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"


def ctl(*arguments: str) -> None:
    done = subprocess.run(
        [RABBITMQCTL, *arguments], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"rabbitmqctl {' '.join(arguments)}: {done.stderr}"


class RoleBroker:
    """A virtual host with one user per role of the definitions file (plus extras)."""

    def __init__(self) -> None:
        self.vhost = f"mlptest-{uuid.uuid4().hex[:8]}"
        self.users: list[str] = []

    def add_user(self, role: str, configure: str, write: str, read: str) -> str:
        user = f"{role}-{self.vhost}"
        ctl("add_user", user, PASSWORD)
        self.users.append(user)
        ctl("set_permissions", "-p", self.vhost, user, configure, write, read)
        return user

    def url(self, user: str, password: str = PASSWORD) -> str:
        return f"amqp://{user}:{password}@127.0.0.1:5672/{self.vhost}"


@pytest.fixture(scope="module")
def broker() -> Iterator[RoleBroker]:
    roles = RoleBroker()
    ctl("add_vhost", roles.vhost)
    try:
        for permission in DEFINITIONS["permissions"]:
            roles.add_user(
                permission["user"],
                permission["configure"],
                permission["write"],
                permission["read"],
            )
        yield roles
    finally:
        for user in roles.users:
            subprocess.run([RABBITMQCTL, "delete_user", user], capture_output=True, check=False)
        ctl("delete_vhost", roles.vhost)


def role_url(broker: RoleBroker, role: str) -> str:
    return broker.url(f"{role}-{broker.vhost}")


def _consume_one_message(url: str, queue: str) -> None:
    """Consumes as the platform's workers do (basic_consume), so read permission is tested."""
    with messaging.open_channel(url) as (channel, _version):
        for method, _properties, _body in channel.consume(queue, inactivity_timeout=5):
            assert method is not None, f"nothing arrived in {queue}"
            channel.basic_ack(method.delivery_tag)
            break
        channel.cancel()


def test_each_role_can_do_its_work(broker: RoleBroker) -> None:
    trainer, inferer = role_url(broker, "mlp-trainer"), role_url(broker, "mlp-inferer")
    submitter = role_url(broker, "mlp-submitter")
    for url, queue in ((trainer, messaging.PIPELINES), (inferer, messaging.BATCHES)):
        with messaging.open_channel(url) as (channel, version):
            messaging.declare_work_queue(channel, queue, version)  # as a worker starts
    definition = load_pipeline_file(REPO / "examples" / "credit_fraud_from_file.json")
    submit_pipeline(definition, broker_url=submitter)
    following = submit_pipeline(definition, broker_url=submitter, follow=True, timeout=1)
    assert following.events is not None
    with pytest.raises(FollowTimeout):  # bound to the events exchange; no trainer answers
        list(following.events)
    rows = pd.DataFrame({"x": [1.0, 2.0]})
    submitted = submit_batch(rows, "model@production", broker_url=submitter)
    assert submitted.part_count == 1
    for _ in range(2):
        _consume_one_message(trainer, messaging.PIPELINES.name)
    _consume_one_message(inferer, messaging.BATCHES.name)


@pytest.mark.parametrize(
    ("role", "queue"),
    [("mlp-inferer", messaging.PIPELINES.name), ("mlp-trainer", messaging.BATCHES.name)],
)
def test_a_worker_of_another_roles_queue_stops_naming_the_permission(
    broker: RoleBroker, role: str, queue: str
) -> None:
    from mlplatform.common.consumer import QueueWorker

    worker = QueueWorker(
        messaging.WorkQueue(queue),
        handler=lambda delivery: None,  # type: ignore[arg-type,return-value]
        store=None,  # type: ignore[arg-type]  # never reached: the worker stops before
        broker_url=role_url(broker, role),
    )
    with pytest.raises(BrokerPermissionError) as refused:
        worker.run()
    assert str(refused.value).startswith(
        f"RabbitMQ user '{role}-{broker.vhost}' lacks configure permission on queue "
        f"'{queue}.dead' in vhost '{broker.vhost}'"
    )


def test_a_submitter_publishes_only_through_the_submit_exchange(broker: RoleBroker) -> None:
    """Not through the default exchange, which would reach any queue (a dead-letter queue,
    another role's wait queue) by its name."""
    with messaging.open_channel(role_url(broker, "mlp-trainer")) as (channel, version):
        messaging.declare_work_queue(channel, messaging.PIPELINES, version)
    message = load_pipeline_file(REPO / "examples" / "credit_fraud_from_file.json")
    with (
        pytest.raises(BrokerPermissionError, match="lacks write permission on exchange 'amq"),
        messaging.open_channel(role_url(broker, "mlp-submitter")) as (channel, _version),
    ):
        messaging.publish(channel, messaging.PIPELINES.dead_letter, message, "direct")


@pytest.mark.parametrize("role", ["mlp-submitter", "mlp-inferer"])
def test_only_trainers_read_the_pipelines_queue(broker: RoleBroker, role: str) -> None:
    with messaging.open_channel(role_url(broker, "mlp-trainer")) as (channel, version):
        messaging.declare_work_queue(channel, messaging.PIPELINES, version)
    connection = pika.BlockingConnection(pika.URLParameters(role_url(broker, role)))
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            connection.channel().basic_get(messaging.PIPELINES.name)
        assert refused.value.reply_code == 403
    finally:
        if connection.is_open:
            connection.close()


def test_a_submitter_without_write_permission_is_told_which(broker: RoleBroker) -> None:
    with messaging.open_channel(role_url(broker, "mlp-trainer")) as (channel, version):
        messaging.declare_work_queue(channel, messaging.PIPELINES, version)
    user = broker.add_user("reader", "^$", "^$", ".*")
    definition = load_pipeline_file(REPO / "examples" / "credit_fraud_from_file.json")
    with pytest.raises(BrokerPermissionError) as refused:
        submit_pipeline(definition, broker_url=broker.url(user))
    assert str(refused.value).startswith(
        f"RabbitMQ user '{user}' lacks write permission on exchange 'mlp.submit' in vhost "
        f"'{broker.vhost}'"
    )


def test_a_worker_without_read_permission_is_told_which(broker: RoleBroker) -> None:
    """Everything a trainer needs but reading its queues. Where the broker checks read when a
    dead-lettering queue is declared, the declaration is refused and says so; otherwise
    consuming is refused."""
    from mlplatform.common.consumer import QueueWorker

    permission = next(p for p in DEFINITIONS["permissions"] if p["user"] == "mlp-trainer")
    user = broker.add_user(
        "no-read", permission["configure"], permission["write"], r"^mlp\.submit$"
    )
    worker = QueueWorker(
        messaging.PIPELINES,
        handler=lambda delivery: None,  # type: ignore[arg-type,return-value]
        store=None,  # type: ignore[arg-type]  # never reached: the worker stops before
        broker_url=broker.url(user),
    )
    with pytest.raises(BrokerPermissionError) as refused:
        worker.run()
    message = str(refused.value)
    assert message.startswith(f"RabbitMQ user '{user}' lacks "), message
    assert (
        "lacks read permission on queue 'mlp.pipelines' in vhost" in message
        or "dead-lettering needs read on it" in message
    ), message


def test_a_wrong_password_is_named(broker: RoleBroker) -> None:
    url = broker.url(f"mlp-submitter-{broker.vhost}", "wrong")
    with (
        pytest.raises(BrokerPermissionError, match="refused the login of user 'mlp-submitter"),
        messaging.open_channel(url),
    ):
        pass


def test_the_trainer_service_stops_with_the_missing_permission(
    broker: RoleBroker, tmp_path: Path
) -> None:
    """`mlp trainer` started with the inferer's user exits 1 with one line, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLP_")}
    env["MLP_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mlplatform.cli", "trainer"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**env, "MLP_BROKER_URL": role_url(broker, "mlp-inferer")},
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert (
        f"mlp: RabbitMQ user 'mlp-inferer-{broker.vhost}' lacks configure permission on queue "
        f"'mlp.pipelines.dead' in vhost '{broker.vhost}'"
    ) in done.stderr
