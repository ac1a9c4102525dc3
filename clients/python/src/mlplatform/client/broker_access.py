"""RabbitMQ's refusals, told plainly: which user lacks which permission on what.

RabbitMQ answers an operation the user's permissions do not cover by closing the channel with
403 ACCESS_REFUSED, whose text names the resource but not the permission (configure, write or
read) the operation needed. `requiring` wraps one operation and turns that refusal into a
`BrokerPermissionError` saying both, and the user and virtual host, so an operator can grant
exactly what is missing (README "Broker users"). A refused login (wrong password, or no access
to the virtual host) becomes the same error from `connect`, and a broker certificate the
client does not trust a TlsError.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from mlplatform.client.tls import TlsError

__all__ = ["BrokerPermissionError", "connect", "requiring"]

ACCESS_REFUSED = 403


class BrokerPermissionError(RuntimeError):
    """RabbitMQ refused this user an operation its permissions do not allow."""


def _identity(parameters: pika.connection.Parameters) -> tuple[str, str]:
    credentials = parameters.credentials
    user = getattr(credentials, "username", "?")
    return user, parameters.virtual_host


@contextlib.contextmanager
def requiring(channel: BlockingChannel, permission: str, resource: str) -> Iterator[None]:
    """Runs one broker operation that needs `permission` (configure, write, read) on
    `resource` (e.g. "queue 'mlp.pipelines'"); a refusal raises BrokerPermissionError."""
    try:
        yield
    except pika.exceptions.ChannelClosedByBroker as error:
        if error.reply_code != ACCESS_REFUSED:
            raise
        user, vhost = _identity(channel.connection._impl.params)  # pika has no public accessor
        raise BrokerPermissionError(
            f"RabbitMQ user '{user}' lacks {permission} permission on {resource} in vhost "
            f"'{vhost}' (the broker said: {error.reply_text})"
        ) from None


def connect(parameters: pika.connection.Parameters) -> pika.BlockingConnection:
    """A blocking connection; BrokerPermissionError when the broker refuses the login, TlsError
    when its certificate is not trusted (neither goes away by retrying)."""
    try:
        return pika.BlockingConnection(parameters)
    except ssl.SSLCertVerificationError as error:
        raise TlsError(
            f"RabbitMQ at {parameters.host}:{parameters.port}: its certificate failed "
            f"verification ({error.verify_message}); MLP_BROKER_TLS_CA must name the CA "
            "that signed it"
        ) from None
    except (
        pika.exceptions.ProbableAuthenticationError,
        pika.exceptions.AuthenticationError,
    ):
        user, vhost = _identity(parameters)
        raise BrokerPermissionError(
            f"RabbitMQ refused the login of user '{user}' (wrong user name or password)"
        ) from None
    except pika.exceptions.ProbableAccessDeniedError:
        user, vhost = _identity(parameters)
        raise BrokerPermissionError(
            f"RabbitMQ user '{user}' may not use vhost '{vhost}' (no permissions there)"
        ) from None
