# Sourced by .ci/run (set -euo pipefail): makes a Docker engine and a local Debian base image
# available for the container test harness (test/harness/containers.ts). Idempotent; quick when
# everything is already present.
#
# - installs Debian's docker.io and debootstrap when missing;
# - starts dockerd (no bridge, no iptables: test containers use host networking) when none answers;
# - builds the base image mailwarden-base/debian:bookworm with debootstrap when it is absent, because
#   no image can be pulled from a registry here. The image's apt sources point at the same Debian
#   mirror this machine's apt uses.
# Test images (test/images/*) are built by the harness on first use, FROM $MAILWARDEN_BASE_IMAGE.
MW_CACHE="${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}"
MW_BASE_IMAGE="mailwarden-base/debian:bookworm"
mkdir -p "$MW_CACHE"

mw_docker_t0=$SECONDS

# The Debian mirror apt uses on this machine (deb822 "URIs:" or one-line "deb URL suite ...").
mw_debian_mirror() {
  local url=""
  url=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/ {u=$2} /^Suites:/ && u!="" { for (i=2;i<=NF;i++) if ($i=="bookworm") { print u; exit } }' || true)
  if [ -z "$url" ]; then
    url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1=="deb" { for (i=2;i<=NF;i++) if ($i ~ /^(http|https|file):/) { if ($(i+1)=="bookworm") { print $i; exit } } }' || true)
  fi
  echo "${url:-http://deb.debian.org/debian}"
}

# Several checkouts on one machine may run this at once: one at a time past this point.
exec {mw_lock_fd}>"$MW_CACHE/docker-setup.lock"
flock -w 1800 "$mw_lock_fd"

mw_need_pkgs=()
command -v dockerd >/dev/null 2>&1 || mw_need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || mw_need_pkgs+=(debootstrap)
if [ "${#mw_need_pkgs[@]}" -gt 0 ]; then
  echo "ci: installing ${mw_need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${mw_need_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "ci: starting dockerd (log: $MW_CACHE/dockerd.log)"
  # (the daemon must not inherit the lock)
  nohup dockerd --bridge=none --iptables=false --ip6tables=false >"$MW_CACHE/dockerd.log" 2>&1 {mw_lock_fd}>&- &
  mw_i=0
  until docker info >/dev/null 2>&1; do
    mw_i=$((mw_i + 1))
    if [ "$mw_i" -gt 120 ]; then
      echo "ci: dockerd did not come up; last log lines:" >&2
      tail -n 30 "$MW_CACHE/dockerd.log" >&2 || true
      return 1 2>/dev/null || exit 1
    fi
    sleep 0.5
  done
fi

if ! docker image inspect "$MW_BASE_IMAGE" >/dev/null 2>&1; then
  mw_mirror=$(mw_debian_mirror)
  mw_root="$MW_CACHE/debootstrap-bookworm"
  echo "ci: building $MW_BASE_IMAGE with debootstrap from $mw_mirror"
  # A mirror answering inconsistently mid-update makes debootstrap fail now and then: retry.
  mw_try=1
  until rm -rf "$mw_root" && debootstrap --variant=minbase bookworm "$mw_root" "$mw_mirror" >"$MW_CACHE/debootstrap.log" 2>&1; do
    echo "ci: debootstrap attempt $mw_try failed:" >&2
    tr '\r' '\n' <"$MW_CACHE/debootstrap.log" | grep -a -E '^(E|W):' | cut -c1-300 | tail -n 5 >&2 || true
    if [ "$mw_try" -ge 3 ]; then
      tail -n 30 "$mw_root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
      return 1 2>/dev/null || exit 1
    fi
    mw_try=$((mw_try + 1))
    sleep 5
  done
  # apt inside the image: same mirror, bookworm + updates (+ security when the host has it).
  mw_sec=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/ {u=$2} /^Suites:/ && /bookworm-security/ {print u; exit}' || true)
  {
    echo "deb $mw_mirror bookworm main"
    echo "deb $mw_mirror bookworm-updates main"
    if [ -n "$mw_sec" ]; then echo "deb $mw_sec bookworm-security main"; fi
  } >"$mw_root/etc/apt/sources.list"
  rm -f "$mw_root"/etc/apt/sources.list.d/*
  # Same apt behaviour as a slim Docker image: no recommends, no docs, clean caches.
  cat >"$mw_root/etc/apt/apt.conf.d/90mailwarden" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::Check-Valid-Until "false";
EOF
  cat >"$mw_root/etc/dpkg/dpkg.cfg.d/90mailwarden-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  # As in Debian's official images: package scripts never start services during image builds.
  printf '#!/bin/sh\nexit 101\n' >"$mw_root/usr/sbin/policy-rc.d"
  chmod 755 "$mw_root/usr/sbin/policy-rc.d"
  rm -rf "$mw_root"/var/cache/apt/archives/*.deb "$mw_root"/var/lib/apt/lists/* \
    "$mw_root"/usr/share/doc/* "$mw_root"/usr/share/man/* "$mw_root"/usr/share/info/*
  tar -C "$mw_root" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' - "$MW_BASE_IMAGE" >/dev/null
  rm -rf "$mw_root"
fi

flock -u "$mw_lock_fd"
exec {mw_lock_fd}>&-

export MAILWARDEN_BASE_IMAGE="$MW_BASE_IMAGE"
export TESTCONTAINERS_RYUK_DISABLED=true
export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
echo "ci: docker ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null), base image $MAILWARDEN_BASE_IMAGE) in $((SECONDS - mw_docker_t0))s"
