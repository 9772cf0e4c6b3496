#!/bin/bash
# Run postgres on 127.0.0.1:$PORT; print MAILWARDEN-READY once it accepts connections.
set -uo pipefail
PORT="${PORT:-5432}"
# TLS (tests): a certificate and key copied into /tls are handed to postgres, which wants to own
# its key with mode 0600.
if [ -f /tls/server.key ] && [ -f /tls/server.crt ]; then
  install -d -o postgres -g postgres -m 700 /run/mailwarden-tls
  install -o postgres -g postgres -m 600 /tls/server.crt /tls/server.key /run/mailwarden-tls/
  set -- -c ssl=on -c ssl_cert_file=/run/mailwarden-tls/server.crt -c ssl_key_file=/run/mailwarden-tls/server.key "$@"
fi
setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c port="$PORT" -c listen_addresses=127.0.0.1 "$@" &
pid=$!
trap 'kill -INT $pid 2>/dev/null' INT TERM
until pg_isready -q -h 127.0.0.1 -p "$PORT" -d postgres -U postgres; do
  kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit $?; }
  sleep 0.05
done
echo "MAILWARDEN-READY postgres 127.0.0.1:$PORT"
rc=0
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done
exit "$rc"
