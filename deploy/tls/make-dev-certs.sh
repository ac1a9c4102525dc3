#!/bin/sh
# Makes a private CA and one certificate per compose service, for trying the stack with TLS
# (compose.tls.yml). Not for production: use your organisation's CA there.
#
#   deploy/tls/make-dev-certs.sh [FOLDER]     # default: deploy/tls/certs
#
# Writes ca.pem (+ ca-key.pem) and, for each service, NAME.pem and NAME-key.pem, valid for the
# service's name on the compose network and for localhost / 127.0.0.1 (reaching published
# ports from the host), usable as server and as client certificate (mutual TLS).
set -eu
folder=${1:-$(dirname "$0")/certs}
mkdir -p "$folder"
cd "$folder"
days=365
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
  -days "$days" -subj "/CN=mlplatform dev CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout ca-key.pem -out ca.pem 2>/dev/null
for name in rabbitmq predictor gateway trainer inferer client; do
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
    -subj "/CN=$name" -keyout "$name-key.pem" -out "$name.csr" 2>/dev/null
  printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=DNS:$name,DNS:localhost,IP:127.0.0.1" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -days "$days" -sha256 -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
done
rm -f ca.srl
# Readable by the services' users inside the containers (RabbitMQ runs as `rabbitmq`).
chmod 644 ./*.pem
echo "certificates in $folder: ca.pem, {rabbitmq,predictor,gateway,trainer,inferer,client}.pem"
