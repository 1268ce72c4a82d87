#!/usr/bin/env bash
# bench/alternatives/run.sh NAME: build the alternative gateway NAME
# (fasthttpgw or revproxy) and run bench/gateway.sh with it as
# BENCH_GATEWAY_BIN; every other bench/gateway.sh variable (ROUNDS,
# BENCH_SHAPES, BENCH_PORT_BASE, ...) passes through. CPUPROFILE=FILE
# writes a CPU profile of the alternative's whole run to FILE.
#
#   ROUNDS=3 bench/alternatives/run.sh fasthttpgw
#   CPUPROFILE=/tmp/fast.prof BENCH_SHAPES=post-2k ROUNDS=1 bench/alternatives/run.sh fasthttpgw
set -euo pipefail
name=${1:?usage: run.sh fasthttpgw|revproxy}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$here" && ${GO:-go} build -o "$tmp/$name" "./$name")
bin=$tmp/$name
if [ -n "${CPUPROFILE:-}" ]; then
	profile=$(realpath -m "$CPUPROFILE")
	printf '#!/bin/sh\nexec %q "$@" -cpuprofile %q\n' "$tmp/$name" "$profile" >"$tmp/profiled"
	chmod +x "$tmp/profiled"
	bin=$tmp/profiled
fi
BENCH_GATEWAY_BIN=$bin "$here/../gateway.sh"
