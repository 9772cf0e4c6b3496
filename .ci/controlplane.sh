# Sourced by .ci/run (and by developers: `source .ci/controlplane.sh`): makes sure a real
# kube-apiserver, kube-controller-manager and etcd exist in a cache outside the repository and
# exports KUBEBUILDER_ASSETS pointing at them, for test/harness/controlplane.ts.
#
# The binaries are built from the Go module proxy by test/controlplane/build.sh (wrapper modules
# test/controlplane/kube and test/controlplane/etcd, with go.sum committed). Cold build on a
# 2-core machine: kube-apiserver ~TBD, kube-controller-manager ~TBD (incremental after it), etcd ~TBD;
# later runs find them in $HOME/.cache/mailwarden/kube/<version>/ and return immediately.
MW_K8S_VERSION="${MW_K8S_VERSION:-v1.34.4}"
mw_controlplane_dir="${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}/kube/$MW_K8S_VERSION"
mw_controlplane_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$mw_controlplane_dir/kube-apiserver" ] || [ ! -x "$mw_controlplane_dir/kube-controller-manager" ] \
   || [ ! -x "$mw_controlplane_dir/etcd" ]; then
  echo "ci: building the test control plane ($MW_K8S_VERSION) into $mw_controlplane_dir"
  K8S_VERSION="$MW_K8S_VERSION" bash "$mw_controlplane_root/test/controlplane/build.sh" "$mw_controlplane_dir"
fi
export KUBEBUILDER_ASSETS="$mw_controlplane_dir"
echo "ci: control plane binaries in $KUBEBUILDER_ASSETS"
unset mw_controlplane_dir mw_controlplane_root
