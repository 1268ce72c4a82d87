#!/usr/bin/env bash
# bench/base.sh REF: build REF's `mlregistry` and its bench/gatewayserver
# (the seeder of REF's schema) into a temporary directory and print the
# BENCH_ALTS entry that makes bench/gateway.sh measure REF's whole product
# in the same rounds as this tree's: "base=serve:BIN,SEEDER". Prints
# nothing when REF is empty. make bench uses it for BENCH_BASE, so the
# POST figures before and after a change come from one run.
set -euo pipefail
ref=${1:-}
[ -n "$ref" ] || exit 0
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=${BENCH_BASE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/mlregistry-base.XXXXXX")}
src=$(mktemp -d "${TMPDIR:-/tmp}/mlregistry-base-src.XXXXXX")
trap 'rm -rf "$src"' EXIT
git archive "$ref" | tar -x -C "$src"
(cd "$src" && CGO_ENABLED=0 $GO build -trimpath -o "$out/mlregistry" ./internal/cmd/mlregistry &&
	CGO_ENABLED=0 $GO build -trimpath -o "$out/gatewayserver" ./bench/gatewayserver) >&2
echo "base=serve:$out/mlregistry,$out/gatewayserver"
