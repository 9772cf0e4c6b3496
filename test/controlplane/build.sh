#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd for the integration tests from the
# wrapper modules beside this script (kube/ and etcd/), into OUT (default
# $HOME/.cache/mailwarden/kube/<k8s-version>); on request also the node's kube-scheduler, kubelet,
# kube-proxy (same wrapper module and build cache as kube-apiserver) and the sandbox binary pause
# (pause/). A binary that is already present is not rebuilt; each is built to a temporary name and
# renamed, so an interrupted build leaves nothing behind.
#
#   test/controlplane/build.sh [OUT] [kube-apiserver|kube-controller-manager|etcd|
#                                     kube-scheduler|kubelet|kube-proxy|pause ...]
#
# Versions come from the wrapper modules: k8s.io/kubernetes in kube/go.mod (the staging replaces
# there must carry the matching v0.<minor>.<patch>), go.etcd.io/etcd/server/v3 in etcd/go.mod.
# Go build caches stay at their defaults (or wherever GOCACHE/GOMODCACHE point), so a rebuild
# after a version bump is incremental.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
modversion() { sed -nE "s#^(require)?[[:space:]]*$2 (v[^ ]+).*#\\2#p" "$here/$1/go.mod" | head -1; }
K8S_VERSION="$(modversion kube k8s.io/kubernetes)"
[ -n "$K8S_VERSION" ] || { echo "controlplane: no k8s.io/kubernetes version in $here/kube/go.mod" >&2; exit 1; }
out="${1:-${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}/kube/$K8S_VERSION}"
shift || true
wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then wanted=(kube-apiserver kube-controller-manager etcd); fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; else
    echo "controlplane: Go toolchain not found (needed once to build the test control plane)" >&2
    exit 1
  fi
fi
mkdir -p "$out"

# 2 cores: go build's default -p is GOMAXPROCS; keep it explicit and modest. GOFLAGS from the
# environment is replaced: -mod=readonly makes go.sum authoritative (a missing sum fails).
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
jobs="${CONTROLPLANE_BUILD_JOBS:-2}"

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
kldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # name module-dir package ldflags [tags]
  local name="$1" dir="$2" pkg="$3" ldflags="$4" tags="${5:-}"
  if [ -x "$out/$name" ]; then return 0; fi
  echo "controlplane: building $name into $out (cold: several minutes)" >&2
  local start=$SECONDS
  (cd "$here/$dir" && go build -p "$jobs" -trimpath ${tags:+-tags "$tags"} \
    -ldflags "$ldflags" -o "$out/.$name.tmp" "$pkg")
  mv -f "$out/.$name.tmp" "$out/$name"
  echo "controlplane: built $name in $((SECONDS - start))s" >&2
}

for w in "${wanted[@]}"; do
  case "$w" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy)
      build "$w" kube "k8s.io/kubernetes/cmd/$w" "$kldflags" selinux,notest ;;
    etcd)
      build etcd etcd go.etcd.io/etcd/server/v3 "-s -w" ;;
    pause)
      build pause pause . "-s -w" ;;
    *) echo "controlplane: unknown binary $w" >&2; exit 2 ;;
  esac
done
