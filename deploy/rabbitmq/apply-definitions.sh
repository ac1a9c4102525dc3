#!/bin/sh
# Loads the broker's users and permissions (definitions.json, beside this script) into a
# running RabbitMQ through its management API, then removes the `guest` user.
#
# definitions.json holds no secrets: each user's password is a ${NAME} placeholder filled in
# here from the environment (compose passes them from .env), so the passwords never sit in a
# committed file. The management API hashes them as it stores them. Passwords must be made of
# URL-safe characters (letters, digits, - . _ ~): they travel inside amqp:// URLs too.
#
# Environment: RABBITMQ_API (http://HOST:15672), RABBITMQ_USER and RABBITMQ_PASSWORD (the
# bootstrap administrator compose creates), RABBITMQ_{TRAINER,INFERER,SUBMITTER}_PASSWORD.
set -eu
here=$(dirname "$0")
for name in RABBITMQ_TRAINER_PASSWORD RABBITMQ_INFERER_PASSWORD RABBITMQ_SUBMITTER_PASSWORD; do
  eval "value=\${$name:-}"
  case "$value" in
    "") echo "apply-definitions: $name is not set" >&2; exit 2 ;;
    *[!A-Za-z0-9._~-]*) echo "apply-definitions: $name has characters other than A-Za-z0-9._~-" >&2; exit 2 ;;
  esac
done
definitions="${TMPDIR:-/tmp}/mlp-definitions.json"
sed \
  -e "s/\${RABBITMQ_TRAINER_PASSWORD}/$RABBITMQ_TRAINER_PASSWORD/" \
  -e "s/\${RABBITMQ_INFERER_PASSWORD}/$RABBITMQ_INFERER_PASSWORD/" \
  -e "s/\${RABBITMQ_SUBMITTER_PASSWORD}/$RABBITMQ_SUBMITTER_PASSWORD/" \
  "$here/definitions.json" >"$definitions"
# The management listener opens a little after the node answers its health check: retry.
curl --silent --show-error --fail \
  --retry 15 --retry-delay 2 --retry-connrefused --retry-all-errors \
  --user "$RABBITMQ_USER:$RABBITMQ_PASSWORD" --header "content-type: application/json" \
  --request POST --data-binary "@$definitions" "$RABBITMQ_API/api/definitions"
rm -f "$definitions"
# Nobody uses guest (the official image creates none when a default user is set; a node
# started elsewhere may have it).
status=$(curl --silent --output /dev/null --write-out '%{http_code}' \
  --user "$RABBITMQ_USER:$RABBITMQ_PASSWORD" --request DELETE "$RABBITMQ_API/api/users/guest")
case "$status" in
  204|404) ;;
  *) echo "apply-definitions: deleting guest answered HTTP $status" >&2; exit 1 ;;
esac
echo "apply-definitions: users and permissions loaded"
