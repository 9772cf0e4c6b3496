#!/bin/bash
# Build time: initialise the cluster, roles and the empty vmail database.
set -euo pipefail
PASSWORD=mailwarden
install -d -o postgres -g postgres -m 700 "$PGDATA"
install -d -o postgres -g postgres -m 2775 /var/run/postgresql
echo "$PASSWORD" > /tmp/pwfile && chown postgres /tmp/pwfile
runuser -u postgres -- initdb -D "$PGDATA" -U postgres --pwfile=/tmp/pwfile -E UTF8 --locale=C.UTF-8 \
  --auth-local=trust --auth-host=scram-sha-256 >/dev/null
rm -f /tmp/pwfile
cat >> "$PGDATA/postgresql.conf" <<CONF
# mailwarden test settings: speed over durability, host networking friendly
listen_addresses = '127.0.0.1'
unix_socket_directories = '/var/run/postgresql'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 200
log_min_messages = warning
log_connections = off
logging_collector = off
CONF
cat > "$PGDATA/pg_hba.conf" <<HBA
local all all trust
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
HBA
runuser -u postgres -- pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q -d postgres <<SQL
CREATE ROLE vmailadmin LOGIN PASSWORD '$PASSWORD';
CREATE ROLE vmail LOGIN PASSWORD '$PASSWORD';
CREATE DATABASE vmail OWNER vmailadmin ENCODING 'UTF8' TEMPLATE template0;
SQL
runuser -u postgres -- pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
