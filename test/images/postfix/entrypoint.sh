#!/bin/bash
# Run Postfix in the foreground with smtpd on 127.0.0.1:$PORT; print MAILWARDEN-READY once it
# answers with a 220 greeting.
set -uo pipefail
PORT="${PORT:-25}"
# Build the wanted configuration aside and install it only when it differs: rewriting main.cf
# makes Postfix's start-up checks take seconds longer.
work=$(mktemp -d)
cp /etc/postfix/main.cf.base "$work/main.cf"
cp /etc/postfix/master.cf.base "$work/master.cf"
postconf -c "$work" -M "127.0.0.1:$PORT/inet=127.0.0.1:$PORT inet n - n - - smtpd"
apply_main() { while IFS= read -r line; do
  [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
  postconf -c "$work" -e "$line" || exit 1
done; }
apply_master() { while IFS= read -r line; do
  [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
  postconf -c "$work" -M "$line" || exit 1
done; }
[ -f /etc/postfix/main.cf.override ] && apply_main < /etc/postfix/main.cf.override
[ -n "${POSTFIX_MAIN_CF:-}" ] && apply_main <<< "$POSTFIX_MAIN_CF"
[ -f /etc/postfix/master.cf.override ] && apply_master < /etc/postfix/master.cf.override
[ -n "${POSTFIX_MASTER_CF:-}" ] && apply_master <<< "$POSTFIX_MASTER_CF"
for f in main.cf master.cf; do
  cmp -s "$work/$f" "/etc/postfix/$f" || cp "$work/$f" "/etc/postfix/$f"
done
rm -rf "$work"
# Start scripts, as the mail server images run theirs before Postfix (docker-mailserver's
# user-patches.sh, bokysan's /docker-init.d/*.sh): each /etc/postfix/start.d/*.sh in name order.
for script in /etc/postfix/start.d/*.sh; do
  [ -e "$script" ] || continue
  bash "$script" || { echo "start script $script failed" >&2; exit 1; }
done
rm -f /var/spool/postfix/pid/master.pid
postfix start-fg &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' INT TERM
probe() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
  IFS= read -r -t 2 line <&3 || { exec 3<&-; return 1; }
  printf 'QUIT\r\n' >&3
  exec 3<&-
  [[ "$line" == 220* ]]
}
until probe 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit $?; }
  sleep 0.05
done
echo "MAILWARDEN-READY postfix 127.0.0.1:$PORT"
rc=0
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done
exit "$rc"
