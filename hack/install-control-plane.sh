#!/usr/bin/env bash
# Installs the local development cluster's parts: etcd, promtool and iproute2 from Debian, and
# kube-apiserver + kube-controller-manager 1.20.2 built from Debian's `kubernetes` source package.
# The build is cached outside the repository, keyed by version, so later runs take no time.
set -euo pipefail

K8S_VERSION="1.20.2"
CACHE_DIR="${KUBESFT_CACHE:-$HOME/.cache/kubesft}"
BIN_DIR="$CACHE_DIR/k8s-$K8S_VERSION/bin"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_debs=()
for cmd_pkg in etcd:etcd-server promtool:prometheus ip:iproute2 unshare:util-linux nsenter:util-linux; do
  command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || need_debs+=("${cmd_pkg##*:}")
done

apt_updated=0
apt_update() {
  if [ "$apt_updated" -eq 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
}

if [ "${#need_debs[@]}" -gt 0 ]; then
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >/dev/null
fi

if [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ]; then
  echo "control plane $K8S_VERSION cached in $BIN_DIR"
  exit 0
fi

echo "building kube-apiserver and kube-controller-manager $K8S_VERSION (one time, about 5 minutes)"
SRC_LIST=/etc/apt/sources.list.d/kubesft-deb-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ /etc/apt/sources.list; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | $SUDO tee "$SRC_LIST" >/dev/null
  apt_updated=0
fi
apt_update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  golang-go rsync jq dpkg-dev golang-github-modern-go-reflect2-dev >/dev/null

WORK="$CACHE_DIR/src-$K8S_VERSION"
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
apt-get source -qq --download-only kubernetes >/dev/null
dpkg-source -x --skip-patches ./kubernetes_*.dsc tree >/dev/null 2>&1 || dpkg-source -x ./kubernetes_*.dsc tree >/dev/null
cd tree

# The vendored reflect2 v1.0.1 segfaults under Go >= 1.18 on the first custom-resource write.
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2

export GOPATH="$PWD/.go" CGO_ENABLED=0 HOME="${HOME:-/root}" GOFLAGS=-mod=vendor GOCACHE="$CACHE_DIR/gocache"
mkdir -p .go/src/k8s.io
ln -sfn ../../.. .go/src/k8s.io/kubernetes
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >build.log 2>&1 || { tail -40 build.log; exit 1; }

mkdir -p "$BIN_DIR"
cp _output/local/bin/linux/amd64/kube-apiserver _output/local/bin/linux/amd64/kube-controller-manager "$BIN_DIR/"
cd "$CACHE_DIR"
rm -rf "$WORK"
echo "control plane $K8S_VERSION built into $BIN_DIR"
