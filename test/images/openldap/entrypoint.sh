#!/bin/bash
# Run slapd on ldap://127.0.0.1:$PORT; print MAILWARDEN-READY once it answers a bind + search.
set -uo pipefail
PORT="${PORT:-389}"
SUFFIX="${LDAP_SUFFIX:-dc=example,dc=com}"
ROOTPW="${LDAP_ROOT_PASSWORD:-mailwarden}"
if [ "$(cat /etc/ldap/mailwarden/current 2>/dev/null)" != "$SUFFIX|$ROOTPW" ]; then
  /usr/local/bin/setup.sh "$SUFFIX" "$ROOTPW" || exit 1
fi
install -d -o openldap -g openldap /run/slapd
URLS="ldap://127.0.0.1:$PORT/"
# TLS (tests): a certificate and key copied into /tls serve StartTLS on the same port, and ldaps://
# on TLS_PORT when it is set.
if [ -f /tls/server.key ] && [ -f /tls/server.crt ]; then
  install -d -o openldap -g openldap -m 700 /run/mailwarden-tls
  install -o openldap -g openldap -m 600 /tls/server.crt /tls/server.key /run/mailwarden-tls/
  printf '%s\n' 'dn: cn=config' 'changetype: modify' 'replace: olcTLSCertificateFile' \
    'olcTLSCertificateFile: /run/mailwarden-tls/server.crt' '-' 'replace: olcTLSCertificateKeyFile' \
    'olcTLSCertificateKeyFile: /run/mailwarden-tls/server.key' '-' \
    | setpriv --reuid=openldap --regid=openldap --init-groups slapmodify -F /etc/ldap/slapd.d -n 0 || exit 1
  if [ -n "${TLS_PORT:-}" ]; then URLS="$URLS ldaps://127.0.0.1:$TLS_PORT/"; fi
fi
slapd -d 0 -h "$URLS" -F /etc/ldap/slapd.d -u openldap -g openldap "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' INT TERM
until ldapsearch -x -H "ldap://127.0.0.1:$PORT" -D "cn=Manager,$SUFFIX" -w "$ROOTPW" -b "$SUFFIX" -s base -LLL dn >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit $?; }
  sleep 0.05
done
echo "MAILWARDEN-READY openldap ldap://127.0.0.1:$PORT $SUFFIX"
rc=0
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done
exit "$rc"
