# Sourced by the hack/build-*.sh scripts; defines functions only:
#   module_version GO_MOD MODULE   the version GO_MOD requires of MODULE, without the leading v
#   find_go GO_MOD WHAT            sets GO to a Go at least as new as GO_MOD asks, or exits
#   build ...                      builds binaries from Go modules into a version-keyed folder
# shellcheck shell=bash

module_version() {
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { sub(/^v/, "", $2); print $2; exit }' "$1"
}

find_go() {
  local go_mod="$1" what="$2" sudo="" required_go go_version
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # The module proxy is reached over HTTPS.
  if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
  fi
  # Debian's golang-go (1.19 on bookworm) is too old for these modules, so it is no fallback.
  GO="$(command -v go || true)"
  if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then
    GO=/usr/local/go/bin/go
  fi
  required_go="$(awk '$1 == "go" { print $2; exit }' "$go_mod")"
  if [ -z "$GO" ]; then
    echo "Go >= $required_go is needed to build $what and no \`go\` is on PATH" >&2
    exit 1
  fi
  go_version="$("$GO" env GOVERSION)"
  go_version="${go_version#go}"
  if [ "$(printf '%s\n%s\n' "$required_go" "$go_version" | sort -V | head -1)" != "$required_go" ]; then
    echo "Go >= $required_go is needed to build $what; $GO is $go_version" >&2
    exit 1
  fi
  export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -modcacherw -buildvcs=false"
}

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
