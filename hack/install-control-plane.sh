#!/usr/bin/env bash
# Installs the local development cluster's parts: kube-apiserver, kube-controller-manager and etcd
# built from Go modules by hack/build-control-plane.sh (cached under ~/.cache/kubesft, keyed by
# version), and promtool and the namespace tools from Debian.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_debs=()
for cmd_pkg in promtool:prometheus ip:iproute2 unshare:util-linux nsenter:util-linux flock:util-linux; do
  command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || need_debs+=("${cmd_pkg##*:}")
done

if [ "${#need_debs[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >/dev/null
fi

exec bash "$HERE/build-control-plane.sh"
