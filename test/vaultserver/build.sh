#!/usr/bin/env bash
# Builds the Vault server used by the Vault adapter's tests into test/vaultserver/bin/vault.
#
# The binary is built once and reused while go.mod, go.sum and main.go are unchanged (a stamp
# file records their hash), so CI pays the build on a clean clone only. Pass -f to force a
# rebuild. The first build downloads ~500 modules from the Go module proxy and compiles them.
set -euo pipefail

cd "$(dirname "$0")"
out=bin/vault
stamp=bin/vault.stamp
want=$(cat go.mod go.sum main.go | sha256sum | cut -d' ' -f1)

if [[ "${1:-}" != "-f" && -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
	echo "vaultserver: $out is up to date"
	exit 0
fi

mkdir -p bin
start=$(date +%s)
# CGO off like HashiCorp's release builds; -s -w drops ~400 MB of symbols and DWARF.
# GOWORK=off keeps any go.work in a parent directory from pulling this module into it.
CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags='-s -w' -o "$out.tmp" .
mv "$out.tmp" "$out"
echo "$want" >"$stamp"
echo "vaultserver: built $out in $(($(date +%s) - start))s: $("./$out" version)"
