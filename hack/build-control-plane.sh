#!/usr/bin/env bash
# Builds a current control plane from Go modules: kube-apiserver and kube-controller-manager at
# the k8s.io/kubernetes version pinned in hack/control-plane/go.mod, and etcd at the version
# pinned in hack/control-plane/etcd/go.mod (the one that Kubernetes release names in its
# build/dependencies.yaml; Debian's etcd 3.4 is older than the oldest it supports, 3.5.24), and
# Kueue's controller manager with its Helm chart at the version pinned in hack/control-plane/kueue.
# The binaries live outside the repository, keyed by version, so a later run takes no time:
#   ${KUBESFT_CACHE:-~/.cache/kubesft}/k8s-<version>/bin/{kube-apiserver,kube-controller-manager}
#   ${KUBESFT_CACHE:-~/.cache/kubesft}/etcd-<version>/bin/etcd
#   ${KUBESFT_CACHE:-~/.cache/kubesft}/kueue-<version>/{bin/kueue,chart/}
# The first build takes about 15 minutes on 2 shared cores (measured twice: modules 15-25 s,
# etcd 1.5-4 min, Kubernetes 11-12.5 min) and needs about 4 GB of disk while it runs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULES="$HERE/control-plane"
CACHE_DIR="${KUBESFT_CACHE:-$HOME/.cache/kubesft}"

# shellcheck source=go-build.sh
source "$HERE/go-build.sh"

K8S_VERSION="$(module_version "$MODULES/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(module_version "$MODULES/etcd/go.mod" go.etcd.io/etcd/server/v3)"
KUEUE_VERSION="$(module_version "$MODULES/kueue/go.mod" sigs.k8s.io/kueue)"
K8S_DIR="$CACHE_DIR/k8s-$K8S_VERSION"
ETCD_DIR="$CACHE_DIR/etcd-$ETCD_VERSION"
KUEUE_DIR="$CACHE_DIR/kueue-$KUEUE_VERSION"

have_k8s() { [ -x "$K8S_DIR/bin/kube-apiserver" ] && [ -x "$K8S_DIR/bin/kube-controller-manager" ]; }
have_etcd() { [ -x "$ETCD_DIR/bin/etcd" ]; }
have_kueue() { [ -x "$KUEUE_DIR/bin/kueue" ] && [ -f "$KUEUE_DIR/chart/Chart.yaml" ]; }
cached() {
  if have_k8s && have_etcd && have_kueue; then
    echo "control plane $K8S_VERSION (etcd $ETCD_VERSION, Kueue $KUEUE_VERSION) cached in $CACHE_DIR"
    exit 0
  fi
}

cached
mkdir -p "$CACHE_DIR"
# Two runs at once (parallel make targets, two test sessions) would build into the same place.
exec 9>"$CACHE_DIR/build-control-plane.lock"
flock 9
cached

find_go "$MODULES/go.mod" "the control plane"
began=$(date +%s)

if ! have_etcd; then
  echo "building etcd $ETCD_VERSION from Go modules (one time, 1.5 to 4 minutes)"
  build "$MODULES/etcd" "$ETCD_DIR" "" etcd go.etcd.io/etcd/server/v3
fi

if ! have_k8s; then
  echo "building kube-apiserver and kube-controller-manager $K8S_VERSION from Go modules (one time, 11 to 13 minutes)"
  # What upstream's hack/lib/version.sh stamps: /version reports the release and the apiserver's
  # compatibility version follows it. The build date is the release's, so builds are repeatable.
  minor="${K8S_VERSION#*.}"
  minor="${minor%%.*}"
  release_date="$(cd "$MODULES" && GOMODCACHE="$K8S_DIR/gomod" "$GO" list -m \
    -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
  version_flags=""
  for key_value in "gitVersion=v$K8S_VERSION" "gitMajor=${K8S_VERSION%%.*}" "gitMinor=$minor" \
    "gitTreeState=clean" "buildDate=$release_date"; do
    version_flags+=" -X k8s.io/component-base/version.$key_value -X k8s.io/client-go/pkg/version.$key_value"
  done
  build "$MODULES" "$K8S_DIR" "$version_flags" "" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
fi

if ! have_kueue; then
  echo "building Kueue $KUEUE_VERSION from Go modules (one time, a few minutes)"
  # The chart is the one Kueue publishes with the release; it comes with the module's source.
  kueue_source="$(cd "$MODULES/kueue" && GOMODCACHE="$KUEUE_DIR/gomod" "$GO" mod download -json sigs.k8s.io/kueue |
    awk -F'"' '$2 == "Dir" { print $4 }')"
  rm -rf "$KUEUE_DIR/chart"
  mkdir -p "$KUEUE_DIR"
  cp -r "$kueue_source/charts/kueue" "$KUEUE_DIR/chart.partial"
  chmod -R u+w "$KUEUE_DIR/chart.partial"
  mv "$KUEUE_DIR/chart.partial" "$KUEUE_DIR/chart"
  build "$MODULES/kueue" "$KUEUE_DIR" "-X sigs.k8s.io/kueue/pkg/version.GitVersion=v$KUEUE_VERSION" kueue \
    sigs.k8s.io/kueue/cmd/kueue
fi

echo "control plane $K8S_VERSION (etcd $ETCD_VERSION, Kueue $KUEUE_VERSION) built in $(($(date +%s) - began)) s into $CACHE_DIR"
