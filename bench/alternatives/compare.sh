#!/usr/bin/env bash
# bench/alternatives/compare.sh: the gateway alternatives of issue 9 head
# to head in ONE run, beside nginx: builds revproxy and fasthttpgw and runs
# bench/gateway.sh with them as BENCH_ALTS, so each round measures direct,
# nginx, main's gateway (bench/gatewayserver), mlregistry serve, revproxy
# and fasthttpgw back to back under the same background load. Prints, per
# request shape, throughput at 32 connections and added p50 latency at 1
# connection as ratios to nginx (median of ROUNDS).
#
# Every bench/gateway.sh variable passes through: ROUNDS (default 3 here),
# BENCH_DURATION, BENCH_WARMUP, BENCH_SHAPES, BENCH_PORT_BASE (uses
# base..base+6), ...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in revproxy fasthttpgw; do
	(cd "$here" && ${GO:-go} build -o "$tmp/$name" "./$name")
done
ROUNDS=${ROUNDS:-3} BENCH_ALTS="revproxy=$tmp/revproxy; fasthttpgw=$tmp/fasthttpgw" "$here/../gateway.sh"
