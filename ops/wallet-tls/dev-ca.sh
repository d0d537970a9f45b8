#!/bin/sh
# A development CA for the wallet link's mutual TLS, and the certificates it signs:
#   ca.pem                  the CA both sides trust (WALLET_TLS_CA_FILE on both)
#   wallet.pem, wallet.key  the wallet's certificate (DNS:wallet, DNS:localhost, IP:127.0.0.1); also a
#                           client one, so the wallet's health probe can present it
#   gateway.pem, gateway.key the gateway's client certificate
# Usage: dev-ca.sh <folder>. Runs once: a folder that already holds ca.pem is left as it is, so a
# restart keeps the certificates both services already use. For development and compose only: in
# production, issue the certificates from your own CA.
set -eu
out=${1:?usage: dev-ca.sh <folder>}
mkdir -p "$out"
cd "$out"
if [ -f ca.pem ]; then
  echo "dev-ca: $out already holds a CA, kept"
  exit 0
fi
days=825
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj '/CN=phia wallet link dev CA' \
  -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' -out ca.pem

issue() {
  name=$1
  usage=$2
  san=$3
  key "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=phia $name" -out "$name.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n%s' \
    "$usage" "$san" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days "$days" \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
issue wallet serverAuth,clientAuth 'subjectAltName=DNS:wallet,DNS:localhost,IP:127.0.0.1'
issue gateway clientAuth 'subjectAltName=DNS:gateway'
rm -f ca.key ca.srl
# The services run as an unprivileged user in their images; these are development keys.
chmod 0644 ./*.pem ./*.key
echo "dev-ca: wrote ca.pem, wallet.pem/.key, gateway.pem/.key to $out"
