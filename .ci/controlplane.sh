# Sourced by .ci/run (and by developers: `source .ci/controlplane.sh`): makes sure a real
# kube-apiserver, kube-controller-manager and etcd exist in a cache outside the repository and
# exports KUBEBUILDER_ASSETS pointing at them, for test/harness/controlplane.ts.
#
# The binaries are built from the Go module proxy by test/controlplane/build.sh (wrapper modules
# test/controlplane/kube and test/controlplane/etcd, with go.sum committed). Cold builds measured
# on the 2-core machine (modules already in the module cache; wall time, CPU time in brackets):
#   kube-apiserver           180 s idle               [user+sys 4m56s]
#   kube-controller-manager   55 s after the apiserver (shares its build cache);
#                            399 s from an empty GOCACHE on a loaded machine [user+sys 6m36s]
#   etcd                      16 s after the above;  120 s from an empty GOCACHE, loaded [1m12s]
# so a first run on a fresh machine takes roughly 5 minutes plus module downloads; later runs find
# the binaries in $HOME/.cache/mailwarden/kube/<version>/ and return immediately.
# The control plane then starts (etcd + kube-apiserver /readyz) in about 2.5 s.
mw_controlplane_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The version is the one the wrapper module requires (test/controlplane/kube/go.mod).
MW_K8S_VERSION="$(sed -nE 's#^(require)?[[:space:]]*k8s\.io/kubernetes (v[^ ]+).*#\2#p' \
  "$mw_controlplane_root/test/controlplane/kube/go.mod" | head -1)"
mw_controlplane_dir="${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}/kube/$MW_K8S_VERSION"
if [ ! -x "$mw_controlplane_dir/kube-apiserver" ] || [ ! -x "$mw_controlplane_dir/kube-controller-manager" ] \
   || [ ! -x "$mw_controlplane_dir/etcd" ]; then
  echo "ci: building the test control plane ($MW_K8S_VERSION) into $mw_controlplane_dir"
  bash "$mw_controlplane_root/test/controlplane/build.sh" "$mw_controlplane_dir"
fi
export KUBEBUILDER_ASSETS="$mw_controlplane_dir"
echo "ci: control plane binaries in $KUBEBUILDER_ASSETS"
unset mw_controlplane_dir mw_controlplane_root
