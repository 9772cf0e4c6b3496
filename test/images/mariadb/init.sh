#!/bin/bash
# Build time: initialise the data directory, accounts and the empty vmail database.
set -euo pipefail
install -d -o mysql -g mysql /run/mysqld
mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db --auth-root-authentication-method=normal >/dev/null
mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock &
pid=$!
until mariadb-admin --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1; do sleep 0.1; done
mariadb --socket=/run/mysqld/mysqld.sock -uroot <<'SQL'
DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost'));
CREATE USER 'root'@'%' IDENTIFIED BY 'mailwarden';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED BY 'mailwarden';
CREATE DATABASE vmail CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE USER 'vmailadmin'@'%' IDENTIFIED BY 'mailwarden';
GRANT ALL PRIVILEGES ON vmail.* TO 'vmailadmin'@'%';
CREATE USER 'vmail'@'%' IDENTIFIED BY 'mailwarden';
GRANT SELECT ON vmail.* TO 'vmail'@'%';
DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';
FLUSH PRIVILEGES;
SQL
kill -TERM "$pid"
wait "$pid"
