# Sourced by .ci/run after .ci/controlplane.sh (and by developers: `source .ci/kubenode.sh`): makes
# sure the test node of test/harness/kube-node.ts can run on this machine. Idempotent; returns at
# once when everything is present.
#
# - Debian packages: containerd and runc (the node's CRI runtime, run as an instance of its own,
#   never the Docker engine's), containernetworking-plugins (CNI, /usr/lib/cni), conntrack (for
#   kube-proxy), iproute2 and util-linux (ip netns, nsenter);
# - kube-scheduler, kubelet and kube-proxy, built by test/controlplane/build.sh from the same
#   wrapper module as kube-apiserver into the same cache folder ($KUBEBUILDER_ASSETS), sharing
#   its Go build cache, and the sandbox binary pause. Measured on the 2-core machine right after
#   the control plane's build, under a load of ~15 (eight developers): kube-scheduler 48 s,
#   kube-proxy 107 s, kubelet 275 s, pause 2 s (7m12s wall, 1m42s user+sys CPU in all).
if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  source "$(dirname "${BASH_SOURCE[0]}")/controlplane.sh"
fi
mw_node_pkgs=()
command -v containerd >/dev/null 2>&1 || mw_node_pkgs+=(containerd)
command -v runc >/dev/null 2>&1 || mw_node_pkgs+=(runc)
[ -x /usr/lib/cni/bridge ] || mw_node_pkgs+=(containernetworking-plugins)
command -v conntrack >/dev/null 2>&1 || mw_node_pkgs+=(conntrack)
command -v nsenter >/dev/null 2>&1 || mw_node_pkgs+=(util-linux)
command -v ip >/dev/null 2>&1 || mw_node_pkgs+=(iproute2)
command -v iptables >/dev/null 2>&1 || mw_node_pkgs+=(iptables)
if [ "${#mw_node_pkgs[@]}" -gt 0 ]; then
  echo "ci: installing ${mw_node_pkgs[*]} for the test node"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${mw_node_pkgs[@]}" >/dev/null
fi
mw_node_missing=()
for mw_b in kube-scheduler kubelet kube-proxy pause; do
  [ -x "$KUBEBUILDER_ASSETS/$mw_b" ] || mw_node_missing+=("$mw_b")
done
if [ "${#mw_node_missing[@]}" -gt 0 ]; then
  echo "ci: building ${mw_node_missing[*]} for the test node into $KUBEBUILDER_ASSETS"
  bash "$(dirname "${BASH_SOURCE[0]}")/../test/controlplane/build.sh" "$KUBEBUILDER_ASSETS" "${mw_node_missing[@]}"
fi
echo "ci: test node binaries in $KUBEBUILDER_ASSETS"
unset mw_node_pkgs mw_node_missing mw_b
