#!/bin/bash
# Run mariadbd on 127.0.0.1:$PORT; print MAILWARDEN-READY once it accepts connections.
set -uo pipefail
PORT="${PORT:-3306}"
install -d -o mysql -g mysql /run/mysqld
mariadbd --port="$PORT" --bind-address=127.0.0.1 "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' INT TERM
until mariadb-admin --protocol=tcp -h127.0.0.1 -P"$PORT" -uroot -pmailwarden ping >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit $?; }
  sleep 0.05
done
echo "MAILWARDEN-READY mariadb 127.0.0.1:$PORT"
rc=0
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done
exit "$rc"
