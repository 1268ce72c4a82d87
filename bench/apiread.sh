#!/usr/bin/env bash
# bench/apiread.sh: API reads of `mlregistry serve` against a bare net/http
# handler serving the same bytes (bench/apiread baseline: it captures every
# benchmarked answer from the running registry, then serves it from a map),
# side by side in one run, one load generator (wrk, random URLs from a Lua
# script carrying a read token), 16 connections.
#
# Reads: MODELS (1000) models x VERSIONS (20) versions, seeded through the
# store (registry.Store.CreateVersion: transactions and audit events as
# through the API) with metrics, tags, parameters, lineage and a signature,
# staging and production assigned. Request shapes:
#   get   GET /api/v1/models/{m}/versions/{v}, m and v uniformly random
#   list  GET /api/v1/models/{m}/versions?tag=env%3Dprod&order_by=metrics.auc+desc&page_size=20
#         (the model's versions tagged env=prod, half of them, best AUC
#         first, one page of 20), m random
# Figures: requests/s, p50 and p99 (wrk --latency), each the median of
# ROUNDS rounds; a round measures the registry and the baseline back to
# back. Targets: get >= 0.5x the baseline's throughput; list >= 0.3x,
# with p99 < 20 ms.
#
# Memory: a fresh registry of MEM_MODELS (1000) x MEM_VERSIONS (100) =
# 100,000 versions (MEM_THROUGH (20) per model seeded the same way, the
# other 80 SQL copies of them with new numbers and checksums: seeding all
# through the store took 5 minutes on the loaded 2-core machine; 0 seeds
# all through the store), then `mlregistry serve` started on it;
# VmRSS/VmHWM of the server after start and after the list load, and
# the list's p99 (same shape, 100 versions per model). Targets: RSS < 100
# MB, list p99 < 20 ms.
#
# The SQLite files live in /dev/shm when it is writable (the seed's fsyncs
# are then cheap; the reads measured come from the page cache either way).
#
# Environment: ROUNDS or BENCH_ROUNDS (3), BENCH_DURATION (5s per
# measurement), BENCH_WARMUP (2s), MODELS, VERSIONS, MEM_MODELS,
# MEM_VERSIONS, MEM_THROUGH, BENCH_CONNS (16), BENCH_PORT_BASE (18300: uses base..base+1),
# BENCH_APIREAD_PHASES ("reads memory"), BENCH_SERVE_FLAGS (more flags for
# mlregistry serve, e.g. --answer-cache-mb 0), BENCH_PROFILE=DIR to serve with the
# in-process registry (bench/apiread serve, the same app.New) and write
# cpu-<phase>.pprof and heap-<phase>.pprof into DIR, BENCH_STRICT=1 to exit
# 1 when a target is missed.
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-2s}
ROUNDS=${ROUNDS:-${BENCH_ROUNDS:-3}}
MODELS=${MODELS:-1000}
VERSIONS=${VERSIONS:-20}
MEM_MODELS=${MEM_MODELS:-1000}
MEM_VERSIONS=${MEM_VERSIONS:-100}
MEM_THROUGH=${MEM_THROUGH:-20}
CONNS=${BENCH_CONNS:-16}
BASE=${BENCH_PORT_BASE:-18300}
PHASES=${BENCH_APIREAD_PHASES:-reads memory}
PROFILE=${BENCH_PROFILE:-}
GO=${GO:-go}
APP_PORT=$BASE
BL_PORT=$((BASE + 1))

log() { printf '%s\n' "$*" >&2; }

if ! command -v wrk >/dev/null 2>&1; then
	log "installing wrk (apt-get)"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >&2
fi

tmp=$(mktemp -d)
data=$tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	data=$(mktemp -d /dev/shm/apiread.XXXXXX)
fi
app_pid=""
bl_pid=""
stop() {
	local p
	for p in "$@"; do
		[ -n "$p" ] || continue
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}
cleanup() {
	stop "$app_pid" "$bl_pid"
	rm -rf "$tmp" "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$APP_PORT" "$BL_PORT"; do
	if port_busy "$p"; then
		log "port $p is in use; set BENCH_PORT_BASE"
		exit 1
	fi
done

# wait_http PORT PATH [SECONDS]: poll until a GET answers 200 (deadline 60 s).
wait_http() {
	local deadline=$((SECONDS + ${3:-60})) status
	while [ $SECONDS -lt $deadline ]; do
		status=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
			printf 'GET %s HTTP/1.0\r\nHost: bench\r\n\r\n' "$2" >&3 &&
			head -n1 <&3) 2>/dev/null || true)
		case $status in *" 200 "*) return 0 ;; esac
		sleep 0.1
	done
	log "nothing answers 200 on 127.0.0.1:$1$2"
	return 1
}

log "building mlregistry and bench/apiread"
$GO build -o "$tmp/mlregistry" ./internal/cmd/mlregistry
$GO build -o "$tmp/apiread" ./bench/apiread

# start_app DB PHASE: `mlregistry serve` (or, with BENCH_PROFILE, the same
# app in bench/apiread with profiles) on DB; sets app_pid.
start_app() {
	if [ -n "$PROFILE" ]; then
		mkdir -p "$PROFILE"
		"$tmp/apiread" serve --listen "127.0.0.1:$APP_PORT" --db "sqlite://$1" \
			-cpuprofile "$PROFILE/cpu-$2.pprof" -memprofile "$PROFILE/heap-$2.pprof" 2>>"$tmp/app.log" &
	else
		# shellcheck disable=SC2086
		"$tmp/mlregistry" serve --listen "127.0.0.1:$APP_PORT" --db "sqlite://$1" --log-level warn ${BENCH_SERVE_FLAGS:-} 2>>"$tmp/app.log" &
	fi
	app_pid=$!
	wait_http "$APP_PORT" /healthz
}

# lua SHAPE MODELS VERSIONS TOKEN FILE: a wrk script asking for random URLs
# of the shape, the same strings bench/apiread captures.
lua() {
	local path
	case $1 in
	get) path='string.format("/api/v1/models/m%05d/versions/%d", math.random(1, models), math.random(1, versions))' ;;
	list) path='string.format("/api/v1/models/m%05d/versions?tag=env%%3Dprod&order_by=metrics.auc+desc&page_size=20", math.random(1, models))' ;;
	esac
	cat >"$5" <<EOF
local models, versions = $2, $3
wrk.headers["Authorization"] = "Bearer $4"
function init(args)
	math.randomseed(os.time() + tonumber(string.match(tostring({}), "0x(%x+)") or "0", 16) % 100000)
end
function request()
	return wrk.format("GET", $path)
end
EOF
}

# to_ms VALUE: wrk latency ("812.00us", "1.23ms", "2.00s") in milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
		printf "%.3f", n }'
}

# measure PORT SCRIPT DURATION -> "req/s p50_ms p99_ms"
measure() {
	local out rps p50 p99
	out=$(wrk -t2 -c"$CONNS" -d"$3" --latency -s "$2" "http://127.0.0.1:$1")
	if grep -q 'Non-2xx' <<<"$out"; then
		log "wrk got answers other than 2xx from port $1 ($2):"
		log "$out"
		echo ERR
		return
	fi
	if grep -q 'Socket errors' <<<"$out"; then
		# wrk gives up on a request after 2 s: counted as a timeout, and
		# the latency figures only hold the requests that finished.
		log "wrk reported socket errors (timeouts) against port $1 ($2): $(grep 'Socket errors' <<<"$out")"
	fi
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

ok=1
report=()
declare -A RPS P50 P99

# rounds PHASE SHAPES...: ROUNDS rounds over the shapes, registry then
# baseline; results in RPS/P50/P99[shape.target].
rounds() {
	local phase=$1 shape target port r rps p50 p99
	shift
	for shape in "$@"; do
		for target in app base; do
			RPS[$shape.$target]=""
			P50[$shape.$target]=""
			P99[$shape.$target]=""
			port=$APP_PORT
			[ "$target" = base ] && port=$BL_PORT
			measure "$port" "$tmp/$phase-$shape.lua" "$WARMUP" >/dev/null
		done
	done
	for r in $(seq "$ROUNDS"); do
		for shape in "$@"; do
			for target in app base; do
				port=$APP_PORT
				[ "$target" = base ] && port=$BL_PORT
				log "$phase round $r: $shape $target, $CONNS connections, $DURATION"
				read -r rps p50 p99 <<<"$(measure "$port" "$tmp/$phase-$shape.lua" "$DURATION")"
				if [ "$rps" = ERR ]; then
					exit 1
				fi
				RPS[$shape.$target]+=" $rps"
				P50[$shape.$target]+=" $p50"
				P99[$shape.$target]+=" $p99"
			done
		done
	done
	for shape in "$@"; do
		for target in app base; do
			RPS[$shape.$target]=$(median <<<"${RPS[$shape.$target]}")
			P50[$shape.$target]=$(median <<<"${P50[$shape.$target]}")
			P99[$shape.$target]=$(median <<<"${P99[$shape.$target]}")
		done
	done
}

# row PHASE SHAPE: a table row, MISS when a target is missed.
row() {
	local line
	line=$(awk -v phase="$1" -v shape="$2" -v ar="${RPS[$2.app]}" -v a50="${P50[$2.app]}" -v a99="${P99[$2.app]}" \
		-v br="${RPS[$2.base]}" -v b50="${P50[$2.base]}" -v b99="${P99[$2.base]}" 'BEGIN {
		ratio = ar / br
		miss = (shape == "get" && ratio < 0.5) || (shape == "list" && (ratio < 0.3 || a99 >= 20))
		printf "| %-6s | %-5s | %10.0f | %6.2f | %6.2f | %10.0f | %6.2f | %6.2f | %5.2fx |%s", phase, shape, ar, a50, a99, br, b50, b99, ratio, miss ? " MISS" : ""
	}')
	report+=("$line")
	case $line in *" MISS") ok=0 ;; esac
}

header=(
	"| phase  | shape | registry r/s | p50 ms | p99 ms | baseline r/s | p50 ms | p99 ms | ratio |"
	"|--------|-------|-----------:|-------:|-------:|-----------:|-------:|-------:|------:|"
)

for phase in $PHASES; do
	case $phase in
	reads) m=$MODELS v=$VERSIONS shapes="get list" gets=true through=0 ;;
	memory) m=$MEM_MODELS v=$MEM_VERSIONS shapes="list" gets=false through=$MEM_THROUGH ;;
	*)
		log "unknown phase $phase"
		exit 1
		;;
	esac
	db=$data/$phase.db
	log "$phase: seeding $m models x $v versions"
	"$tmp/apiread" seed -db "sqlite://$db" -models "$m" -versions "$v" -through "$through"
	token=$("$tmp/mlregistry" token create --db "sqlite://$db" --name "bench-$phase" --scope read 2>/dev/null)
	start_app "$db" "$phase"
	read -r rss0 hwm0 <<<"$("$tmp/apiread" rss -pid "$app_pid")"
	"$tmp/apiread" baseline -listen "127.0.0.1:$BL_PORT" -from "http://127.0.0.1:$APP_PORT" -token "$token" \
		-models "$m" -versions "$v" -gets="$gets" &
	bl_pid=$!
	wait_http "$BL_PORT" "/api/v1/models/m00001/versions?tag=env%3Dprod&order_by=metrics.auc+desc&page_size=20" 300
	for shape in $shapes; do
		lua "$shape" "$m" "$v" "$token" "$tmp/$phase-$shape.lua"
	done
	read -r rss1 hwm1 <<<"$("$tmp/apiread" rss -pid "$app_pid")"
	# shellcheck disable=SC2086
	rounds "$phase" $shapes
	read -r rss2 hwm2 <<<"$("$tmp/apiread" rss -pid "$app_pid")"
	for shape in $shapes; do
		row "$phase" "$shape"
	done
	if [ "$phase" = memory ]; then
		mem=$(awk -v m="$m" -v v="$v" -v r0="$rss0" -v r1="$rss1" -v r2="$rss2" -v h="$hwm2" 'BEGIN {
			printf "memory: %d versions (%d models x %d); registry VmRSS after start %.1f MB, after the baseline capture %.1f MB, after the list runs %.1f MB; VmHWM %.1f MB (target < 100 MB)%s", m * v, m, v, r0, r1, r2, h, (h >= 100 ? " MISS" : "")
		}')
		case $mem in *" MISS") ok=0 ;; esac
	else
		mem=$(printf '%s: registry VmRSS after the run %s MB, VmHWM %s MB' "$phase" "$rss2" "$hwm2")
	fi
	report+=("$mem")
	stop "$app_pid" "$bl_pid"
	app_pid=""
	bl_pid=""
	rm -f "$db" "$db"-*
done

printf '\napi read benchmark: %s cpus, wrk -t2 -c%s, median of %s round(s) of %s per measurement\n' "$(nproc)" "$CONNS" "$ROUNDS" "$DURATION"
printf 'baseline: bare net/http serving the bytes captured from the registry; targets: get ratio >= 0.50x, list ratio >= 0.30x with p99 < 20 ms, RSS < 100 MB\n\n'
printf '%s\n' "${header[@]}"
for line in "${report[@]}"; do
	case $line in "|"*) printf '%s\n' "$line" ;; esac
done
printf '\n'
for line in "${report[@]}"; do
	case $line in "|"*) ;; *) printf '%s\n' "$line" ;; esac
done
if [ "$ok" -eq 0 ]; then
	printf '\na target is missed (MISS above)\n'
	if [ "${BENCH_STRICT:-0}" = 1 ]; then
		exit 1
	fi
fi
