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

module_version() { # go.mod file, module path -> version without the leading v
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { sub(/^v/, "", $2); print $2; exit }' "$1"
}

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

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# The module proxy is reached over HTTPS.
if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
fi

# Debian's golang-go (1.19 on bookworm) is too old for these modules, so it is no fallback.
GO="$(command -v go || true)"
if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then
  GO=/usr/local/go/bin/go
fi
required_go="$(awk '$1 == "go" { print $2; exit }' "$MODULES/go.mod")"
if [ -z "$GO" ]; then
  echo "Go >= $required_go is needed to build the control plane and no \`go\` is on PATH" >&2
  exit 1
fi
go_version="$("$GO" env GOVERSION)"
go_version="${go_version#go}"
if [ "$(printf '%s\n%s\n' "$required_go" "$go_version" | sort -V | head -1)" != "$required_go" ]; then
  echo "Go >= $required_go is needed to build the control plane; $GO is $go_version" >&2
  exit 1
fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -modcacherw -buildvcs=false"
began=$(date +%s)

# build MODULE_DIR KEY_DIR LDFLAGS OUTPUT PACKAGE...: builds into a fresh directory that becomes
# KEY_DIR/bin only once every binary is there, so a broken build is never taken as cached.
# OUTPUT names the binary of a single package; empty names each binary after its package.
build() {
  local module_dir="$1" key_dir="$2" ldflags="$3" output="$4"
  shift 4
  local step
  export GOMODCACHE="$key_dir/gomod" GOCACHE="$key_dir/gocache"
  rm -rf "$key_dir/bin.partial"
  mkdir -p "$key_dir/bin.partial"
  step=$(date +%s)
  (cd "$module_dir" && "$GO" mod download)
  echo "  modules for $(basename "$key_dir") downloaded in $(($(date +%s) - step)) s"
  step=$(date +%s)
  # Upstream's release flags: no debug info, trimmed paths, no gRPC tracing, no test hooks.
  (cd "$module_dir" && nice -n 10 "$GO" build -trimpath -tags=selinux,notest,grpcnotrace \
    -ldflags="-s -w $ldflags" -o "$key_dir/bin.partial/$output" "$@")
  echo "  $(basename "$key_dir") built in $(($(date +%s) - step)) s"
  rm -rf "$key_dir/bin"
  mv "$key_dir/bin.partial" "$key_dir/bin"
  # The module and build caches (3 GB for Kubernetes) serve only a rebuild, which a cached binary
  # never needs; after a failed build they stay, so a retry resumes.
  rm -rf "$key_dir/gomod" "$key_dir/gocache"
}

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
