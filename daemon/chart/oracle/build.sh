#!/usr/bin/env bash
# Builds the Go template oracle (main.go beside this script) into
# $CONVOY_CACHE/go-oracle/oracle (default ~/.cache/convoy), unless the binary there was built
# from the same main.go with the same Go. Prints the binary's path on stdout.
# Needs Debian's golang-go, golang-github-masterminds-sprig-dev, golang-k8s-sigs-yaml-dev,
# golang-gopkg-yaml.v3-dev and golang-github-burntsushi-toml-dev (see .ci/install-deps).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache="${CONVOY_CACHE:-$HOME/.cache/convoy}/go-oracle"
bin="$cache/oracle"
command -v go >/dev/null || { echo "oracle/build.sh: go not found" >&2; exit 2; }
stamp="$(sha256sum "$here/main.go" | cut -d' ' -f1) $(go version)"
if [ -x "$bin" ] && [ "$(cat "$cache/stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
echo "oracle/build.sh: building $bin" >&2
GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS="" GOCACHE="$cache/gocache" \
  go build -o "$bin.tmp" "$here/main.go"
mv "$bin.tmp" "$bin"
echo "$stamp" >"$cache/stamp"
echo "$bin"
