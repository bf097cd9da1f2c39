#!/usr/bin/env bash
# Builds gofakes3, the S3 server bench/time_to_resume reads checkpoints back from, at the version
# pinned in hack/control-plane/s3/go.mod, into
#   ${KUBESFT_CACHE:-~/.cache/kubesft}/gofakes3-<version>/bin/gofakes3
# once; the tests use moto and need none of it. About 40 s on 2 cores.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULE="$HERE/control-plane/s3"
CACHE_DIR="${KUBESFT_CACHE:-$HOME/.cache/kubesft}"
# shellcheck source=go-build.sh
source "$HERE/go-build.sh"

VERSION="$(module_version "$MODULE/go.mod" github.com/johannesboyne/gofakes3)"
KEY_DIR="$CACHE_DIR/gofakes3-$VERSION"
if [ -x "$KEY_DIR/bin/gofakes3" ]; then
  echo "gofakes3 $VERSION cached in $KEY_DIR"
  exit 0
fi
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/build-s3-server.lock"
flock 9
if [ ! -x "$KEY_DIR/bin/gofakes3" ]; then
  find_go "$MODULE/go.mod" "gofakes3"
  echo "building gofakes3 $VERSION from Go modules (one time, about 40 s)"
  build "$MODULE" "$KEY_DIR" "" gofakes3 github.com/johannesboyne/gofakes3/cmd/gofakes3
fi
