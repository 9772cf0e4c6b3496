#!/bin/bash
# (Re)create slapd's cn=config and the mdb database for suffix $1 and root password $2.
# Run at build time with the defaults, and by the entrypoint when the run-time values differ.
set -euo pipefail
SUFFIX="$1"
ROOTPW="$2"
D=/etc/ldap/mailwarden
rdn="${SUFFIX%%,*}"
attr="${rdn%%=*}"
value="${rdn#*=}"
case "${attr,,}" in
  dc) top=$'dcObject\nobjectClass: organization' ;;
  o) top=organization ;;
  ou) top=organizationalUnit ;;
  *) echo "setup.sh: unsupported suffix $SUFFIX" >&2; exit 1 ;;
esac
shopt -u patsub_replacement 2>/dev/null || true
subst() {
  local s
  s="$(<"$1")"
  s="${s//@SUFFIX@/"$SUFFIX"}"
  s="${s//@ROOTPW@/"$ROOTPW"}"
  s="${s//@TOPCLASS@/$top}"
  s="${s//@RDNATTR@/$attr}"
  s="${s//@RDNVALUE@/$value}"
  printf '%s\n' "$s"
}
rm -rf /etc/ldap/slapd.d /var/lib/ldap
mkdir -p /etc/ldap/slapd.d /var/lib/ldap /run/slapd
subst "$D/config.ldif" > /tmp/config.ldif
slapadd -q -n0 -F /etc/ldap/slapd.d -l /tmp/config.ldif
subst "$D/base.ldif" | slapadd -q -n1 -F /etc/ldap/slapd.d
rm -f /tmp/config.ldif
chown -R openldap:openldap /etc/ldap/slapd.d /var/lib/ldap /run/slapd
chmod 700 /var/lib/ldap
printf '%s\n' "$SUFFIX|$ROOTPW" > "$D/current"
