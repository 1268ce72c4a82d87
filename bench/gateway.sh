#!/usr/bin/env bash
# bench/gateway.sh: the gateway against nginx, side by side, one load
# generator (wrk). Two upstreams (bench/upstream) read the request body and
# answer 64 bytes (or, on /sse, a stream of 8 server-sent events); nginx and
# our gateway (bench/gatewayserver: gateway.New on a SQLite registry, routes
# 90/10 with a guard) split traffic 90/10 across them.
#
# Request shapes, what prediction clients send (POST first):
#   post-2k    POST 2 KB JSON (wrk Lua script)
#   post-64k   POST 64 KB JSON
#   get-64     GET, 64-byte answer
#   sse        GET, a streamed answer (text/event-stream, 8 flushed events)
#
# For each shape: requests/s at 32 connections and the median latency at
# one connection for (a) the upstream directly, (b) nginx, (c) the
# gateway, and (d) the whole product, `mlregistry serve` with a read token
# (auth, request IDs, API metrics on top of the gateway), reported for (c)
# and (d) as ratios to nginx:
#   throughput      target / nginx                                target >= 0.9
#   added latency   (target - direct) / (nginx - direct) at p50   target <= 1.3
#
# The machine is shared (wrk, two upstreams and the proxy on two cores, and
# whatever else runs), so absolute figures move from run to run: read the
# ratios. Each figure is the median of ROUNDS rounds, and a round measures
# direct, nginx, gateway and mlregistry back to back so they see the same
# background load.
#
# Environment: ROUNDS or BENCH_ROUNDS (5; 3 for a quicker run),
# BENCH_DURATION (4s per measurement), BENCH_WARMUP (2s), BENCH_SHAPES
# (default all four, e.g. "post-2k get-64"), BENCH_GATEWAY_PROCS
# (GOMAXPROCS of the gateway and of mlregistry; 0, the default, leaves Go's
# own choice), BENCH_FAST_LISTENER (1: serve through gateway.Listener; 0: a
# plain net.Listener), BENCH_PORT_BASE (18080: uses base..base+4),
# BENCH_PROGRESSIVE=1 to seed this tree's endpoint (gateway and mlregistry
# columns, not the alternatives) with a header-matched route and its split
# as a rollout in force (bench/gatewayserver -progressive),
# BENCH_STRICT=1 to exit 1 when post-2k through mlregistry misses a target,
# BENCH_GATEWAY_BIN to bench a prebuilt gateway server taking the same flags,
# BENCH_ALTS to measure alternative gateway servers in the same rounds:
# "name=command [flags]" entries separated by ";", each command taking
# bench/gatewayserver's flags (the word gatewayserver is the one built
# here), e.g. "nolane=gatewayserver -lane=false; old=/tmp/old-gatewayserver";
# an entry "name=serve:BINARY,SEEDER" runs BINARY as `mlregistry serve`
# (its own database, seeded by SEEDER, a bench/gatewayserver of the same
# tree, since a schema newer than BINARY's is refused; and a read token),
# e.g. "old-serve=serve:/tmp/old-mlregistry,/tmp/old-gatewayserver" to
# compare two builds of the whole product; they get ports base+5 on and a
# table of their own.
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-4s}
WARMUP=${BENCH_WARMUP:-2s}
ROUNDS=${ROUNDS:-${BENCH_ROUNDS:-5}}
SHAPES=${BENCH_SHAPES:-post-2k post-64k get-64 sse}
PROCS=${BENCH_GATEWAY_PROCS:-0}
FAST=${BENCH_FAST_LISTENER:-1}
BASE=${BENCH_PORT_BASE:-18080}
GO=${GO:-go}
NGINX_PORT=$BASE
UP1_PORT=$((BASE + 1))
UP2_PORT=$((BASE + 2))
GW_PORT=$((BASE + 3))
APP_PORT=$((BASE + 4))

log() { printf '%s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------
find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true; }
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ -n "$(find_nginx)" ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]} (apt-get)"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
NGINX=$(find_nginx)

# --- processes ---------------------------------------------------------------
tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$NGINX_PORT" "$UP1_PORT" "$UP2_PORT" "$GW_PORT" "$APP_PORT"; do
	if port_busy "$p"; then
		log "port $p is in use; set BENCH_PORT_BASE"
		exit 1
	fi
done

# wait_http PORT PATH: poll until a GET answers 200 (deadline 30 s).
wait_http() {
	local deadline=$((SECONDS + 30)) status
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

log "building bench/upstream, bench/gatewayserver and mlregistry"
$GO build -o "$tmp/upstream" ./bench/upstream
$GO build -o "$tmp/gatewayseed" ./bench/gatewayserver
$GO build -o "$tmp/mlregistry" ./internal/cmd/mlregistry
GW_BIN=${BENCH_GATEWAY_BIN:-}
if [ -z "$GW_BIN" ]; then
	$GO build -o "$tmp/gatewayserver" ./bench/gatewayserver
	GW_BIN=$tmp/gatewayserver
fi

"$tmp/upstream" -listen "127.0.0.1:$UP1_PORT" &
pids+=($!)
"$tmp/upstream" -listen "127.0.0.1:$UP2_PORT" &
pids+=($!)

mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    upstream models {
        server 127.0.0.1:$UP1_PORT weight=90;
        server 127.0.0.1:$UP2_PORT weight=10;
        keepalive 128;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location /serve/bench/ {
            proxy_pass http://models/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            # Stream like the gateway does.
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
EOF
"$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
pids+=($!)

fast_flag=-fast-listener=true
[ "$FAST" = 1 ] || fast_flag=-fast-listener=false
seed_flags=()
[ "${BENCH_PROGRESSIVE:-0}" = 1 ] && seed_flags=(-progressive)
"$GW_BIN" -listen "127.0.0.1:$GW_PORT" -db "$tmp/registry.db" -procs "$PROCS" "$fast_flag" "${seed_flags[@]}" \
	-upstreams "http://127.0.0.1:$UP1_PORT,http://127.0.0.1:$UP2_PORT" 2>"$tmp/gateway.log" &
pids+=($!)

# The whole product on its own database: the same endpoint, seeded, then
# `mlregistry serve` with a read-scoped token, as a client would call it.
"$tmp/gatewayseed" -seed-only "${seed_flags[@]}" -db "$tmp/app.db" \
	-upstreams "http://127.0.0.1:$UP1_PORT,http://127.0.0.1:$UP2_PORT"
APP_TOKEN=$("$tmp/mlregistry" token create --db "sqlite://$tmp/app.db" --name bench --scope read 2>/dev/null)
GOMAXPROCS=$([ "$PROCS" -gt 0 ] && echo "$PROCS" || nproc) \
	"$tmp/mlregistry" serve --listen "127.0.0.1:$APP_PORT" --db "sqlite://$tmp/app.db" --log-level warn 2>"$tmp/app.log" &
pids+=($!)

# Alternatives, each on its own port and database.
declare -A ALT_URL ALT_PORT ALT_TOKEN
ALT_NAMES=()
if [ -n "${BENCH_ALTS:-}" ]; then
	IFS=';' read -ra alt_entries <<<"$BENCH_ALTS"
	i=0
	for entry in "${alt_entries[@]}"; do
		entry=$(sed 's/^ *//; s/ *$//' <<<"$entry")
		[ -n "$entry" ] || continue
		name=${entry%%=*}
		read -ra cmd <<<"${entry#*=}"
		port=$((BASE + 5 + i))
		i=$((i + 1))
		if [[ ${cmd[0]} == serve:* ]]; then
			bin=${cmd[0]#serve:}
			seeder=$tmp/gatewayseed
			if [[ $bin == *,* ]]; then
				seeder=${bin#*,}
				bin=${bin%%,*}
			fi
			"$seeder" -seed-only -db "$tmp/alt-$name.db" \
				-upstreams "http://127.0.0.1:$UP1_PORT,http://127.0.0.1:$UP2_PORT"
			ALT_TOKEN[$name]=$("$bin" token create --db "sqlite://$tmp/alt-$name.db" --name bench --scope read 2>/dev/null)
			GOMAXPROCS=$([ "$PROCS" -gt 0 ] && echo "$PROCS" || nproc) \
				"$bin" serve --listen "127.0.0.1:$port" --db "sqlite://$tmp/alt-$name.db" --log-level warn 2>"$tmp/alt-$name.log" &
		else
			[ "${cmd[0]}" = gatewayserver ] && cmd[0]=$tmp/gatewayserver
			[ -x "$tmp/gatewayserver" ] || $GO build -o "$tmp/gatewayserver" ./bench/gatewayserver
			"${cmd[@]}" -listen "127.0.0.1:$port" -db "$tmp/alt-$name.db" -procs "$PROCS" "$fast_flag" \
				-upstreams "http://127.0.0.1:$UP1_PORT,http://127.0.0.1:$UP2_PORT" 2>"$tmp/alt-$name.log" &
		fi
		pids+=($!)
		ALT_NAMES+=("$name")
		ALT_PORT[$name]=$port
		ALT_URL[$name]=http://127.0.0.1:$port/serve/bench/
	done
fi

wait_http "$UP1_PORT" /
wait_http "$UP2_PORT" /
wait_http "$NGINX_PORT" /serve/bench/
wait_http "$GW_PORT" /serve/bench/
wait_http "$APP_PORT" /healthz
for name in "${ALT_NAMES[@]}"; do
	if [ -n "${ALT_TOKEN[$name]:-}" ]; then
		wait_http "${ALT_PORT[$name]}" /healthz
	else
		wait_http "${ALT_PORT[$name]}" /serve/bench/
	fi
done

# --- measurements --------------------------------------------------------------
DIRECT_URL=http://127.0.0.1:$UP1_PORT/
NGINX_URL=http://127.0.0.1:$NGINX_PORT/serve/bench/
GW_URL=http://127.0.0.1:$GW_PORT/serve/bench/
APP_URL=http://127.0.0.1:$APP_PORT/serve/bench/

# Lua scripts for the bodies: JSON of exactly N bytes.
for n in 2048 65536; do
	cat >"$tmp/post-$n.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"inputs":"' .. string.rep("x", $n - 13) .. '"}'
wrk.headers["Content-Type"] = "application/json"
EOF
done

# to_us VALUE: wrk latency ("812.00us", "1.23ms", "2.00s") in microseconds.
to_us() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "ms") n *= 1000; else if (u == "s") n *= 1000000; else if (u == "m") n *= 60000000
		printf "%.1f", n }'
}

TARGETS="direct nginx gateway app ${ALT_NAMES[*]}"
url_of() { case $1 in direct) echo "$DIRECT_URL" ;; nginx) echo "$NGINX_URL" ;; gateway) echo "$GW_URL" ;; app) echo "$APP_URL" ;; *) echo "${ALT_URL[$1]}" ;; esac; }

# measure SHAPE CONNS THREADS TARGET -> "req/s p50_us"
measure() {
	local shape=$1 conns=$2 threads=$3 target=$4 out rps p50 url
	local args=()
	url=$(url_of "$target")
	case $shape in
	post-2k) args+=(-s "$tmp/post-2048.lua") ;;
	post-64k) args+=(-s "$tmp/post-65536.lua") ;;
	sse) url=${url}sse ;;
	esac
	[ "$target" = app ] && args+=(-H "Authorization: Bearer $APP_TOKEN")
	[ -n "${ALT_TOKEN[$target]:-}" ] && args+=(-H "Authorization: Bearer ${ALT_TOKEN[$target]}")
	out=$(wrk -t"$threads" -c"$conns" -d"$DURATION" --latency "${args[@]}" "$url")
	if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
		log "wrk reported errors for $shape $target:"
		log "$out"
	fi
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
	echo "$rps $(to_us "$p50")"
}

median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A RPS P50
log "warming up ($WARMUP each)"
for shape in $SHAPES; do
	for name in $TARGETS; do
		RPS[$shape.$name]=""
		P50[$shape.$name]=""
		DURATION=$WARMUP measure "$shape" 32 2 "$name" >/dev/null
	done
done

for round in $(seq "$ROUNDS"); do
	for shape in $SHAPES; do
		for name in $TARGETS; do
			log "round $round: $shape $name, 32 connections, $DURATION"
			read -r rps _ <<<"$(measure "$shape" 32 2 "$name")"
			RPS[$shape.$name]="${RPS[$shape.$name]} $rps"
		done
		for name in $TARGETS; do
			log "round $round: $shape $name, 1 connection, $DURATION"
			read -r _ p50 <<<"$(measure "$shape" 1 1 "$name")"
			P50[$shape.$name]="${P50[$shape.$name]} $p50"
		done
	done
done

# --- report -------------------------------------------------------------------
printf '\ngateway benchmark: %s cpus, wrk, 90/10 split, guard on; median of %s round(s) of %s per measurement\n' "$(nproc)" "$ROUNDS" "$DURATION"
printf 'gateway GOMAXPROCS=%s, %s; mlregistry serve with a read token\n' "$([ "$PROCS" -gt 0 ] && echo "$PROCS" || echo default)" "$([ "$FAST" = 1 ] && echo gateway.Listener || echo 'plain listener')"
printf 'ratios to nginx: throughput at 32 connections (target >= 0.90x), added p50 latency at 1 connection (target <= 1.30x)\n\n'
printf '| %-8s | %9s | %10s | %12s | %12s | %14s | %15s |\n' shape "nginx r/s" "nginx +p50" "gateway tput" "gateway +p50" "mlregistry tput" "mlregistry +p50"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ---------- ----------- ------------ -------------- -------------- -------------- -----------------
ok=1
for shape in $SHAPES; do
	for name in $TARGETS; do
		RPS[$shape.$name]=$(median <<<"${RPS[$shape.$name]# }")
		P50[$shape.$name]=$(median <<<"${P50[$shape.$name]# }")
	done
	line=$(awk -v shape="$shape" -v nr="${RPS[$shape.nginx]}" -v dl="${P50[$shape.direct]}" -v nl="${P50[$shape.nginx]}" \
		-v gr="${RPS[$shape.gateway]}" -v gl="${P50[$shape.gateway]}" -v ar="${RPS[$shape.app]}" -v al="${P50[$shape.app]}" '
	BEGIN {
		na = nl - dl; if (na < 1) na = 1
		gt = gr / nr; ga = (gl - dl) / na; at = ar / nr; aa = (al - dl) / na
		printf "| %-8s | %9.0f | %8.0fus | %11.2fx | %11.2fx | %13.2fx | %14.2fx |", shape, nr, nl - dl, gt, ga, at, aa
		if (shape == "post-2k" && (at < 0.9 || aa > 1.3)) printf " MISS"
		print ""
	}')
	printf '%s\n' "${line% MISS}"
	case $line in *" MISS") ok=0 ;; esac
done
if [ ${#ALT_NAMES[@]} -gt 0 ]; then
	printf '\nalternatives, same rounds, as ratios to nginx (throughput c=32 / added p50 c=1):\n\n'
	printf '| %-8s |' shape
	for name in "${ALT_NAMES[@]}"; do printf ' %-21s |' "$name"; done
	printf '\n|----------|'
	for name in "${ALT_NAMES[@]}"; do printf '%s|' -----------------------; done
	printf '\n'
	for shape in $SHAPES; do
		printf '| %-8s |' "$shape"
		for name in "${ALT_NAMES[@]}"; do
			r=$(median <<<"${RPS[$shape.$name]# }")
			l=$(median <<<"${P50[$shape.$name]# }")
			awk -v nr="${RPS[$shape.nginx]}" -v dl="${P50[$shape.direct]}" -v nl="${P50[$shape.nginx]}" -v r="$r" -v l="$l" '
			BEGIN { na = nl - dl; if (na < 1) na = 1; printf " %8.2fx / %8.2fx |", r / nr, (l - dl) / na }'
		done
		printf '\n'
	done
fi
if [ "$ok" -eq 0 ]; then
	printf '\npost-2k through mlregistry serve misses a target (>= 0.90x throughput, <= 1.30x added latency)\n'
	if [ "${BENCH_STRICT:-0}" = 1 ]; then
		exit 1
	fi
fi
