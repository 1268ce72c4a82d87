#!/usr/bin/env bash
# bench/alternatives/compare.sh: the gateway alternatives of issue 9 head
# to head in ONE run, beside nginx, with bench/gateway.sh's method (wrk,
# two bench/upstream servers, 90/10 split, Lua-scripted JSON bodies): each
# round measures direct, nginx, main's gateway (bench/gatewayserver),
# revproxy and fasthttpgw back to back, so they see the same background
# load. Prints, per request shape, throughput at 32 connections and added
# p50 latency at 1 connection as ratios to nginx (median of ROUNDS).
#
# Environment: ROUNDS (3), BENCH_DURATION (4s), BENCH_WARMUP (2s),
# BENCH_SHAPES (post-2k post-64k get-64 sse), BENCH_PORT_BASE (18080: uses
# base..base+5). nginx and wrk must be installed (bench/gateway.sh
# installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
DURATION=${BENCH_DURATION:-4s}
WARMUP=${BENCH_WARMUP:-2s}
ROUNDS=${ROUNDS:-3}
SHAPES=${BENCH_SHAPES:-post-2k post-64k get-64 sse}
BASE=${BENCH_PORT_BASE:-18080}
GO=${GO:-go}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
NGINX_PORT=$BASE UP1=$((BASE + 1)) UP2=$((BASE + 2))
declare -A PORT=([gateway]=$((BASE + 3)) [revproxy]=$((BASE + 4)) [fasthttpgw]=$((BASE + 5)))
ALTS="gateway revproxy fasthttpgw"
TARGETS="direct nginx $ALTS"
log() { printf '%s\n' "$*" >&2; }

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

log "building"
(cd "$root" && $GO build -o "$tmp/upstream" ./bench/upstream && $GO build -o "$tmp/gateway" ./bench/gatewayserver)
(cd "$here" && $GO build -o "$tmp/revproxy" ./revproxy && $GO build -o "$tmp/fasthttpgw" ./fasthttpgw)

"$tmp/upstream" -listen "127.0.0.1:$UP1" & pids+=($!)
"$tmp/upstream" -listen "127.0.0.1:$UP2" & pids+=($!)
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<NGINX
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
        server 127.0.0.1:$UP1 weight=90;
        server 127.0.0.1:$UP2 weight=10;
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
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
NGINX
"$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" & pids+=($!)
for a in $ALTS; do
	"$tmp/$a" -listen "127.0.0.1:${PORT[$a]}" -db "$tmp/registry.db" \
		-upstreams "http://127.0.0.1:$UP1,http://127.0.0.1:$UP2" 2>"$tmp/$a.log" & pids+=($!)
done
wait_http "$UP1" /
wait_http "$UP2" /
wait_http "$NGINX_PORT" /serve/bench/
for a in $ALTS; do wait_http "${PORT[$a]}" /serve/bench/; done

for n in 2048 65536; do
	cat >"$tmp/post-$n.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"inputs":"' .. string.rep("x", $n - 13) .. '"}'
wrk.headers["Content-Type"] = "application/json"
LUA
done
to_us() {
	awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "ms") n *= 1000; else if (u == "s") n *= 1000000
		printf "%.1f", n }'
}
url_of() {
	case $1 in
	direct) echo "http://127.0.0.1:$UP1/" ;;
	nginx) echo "http://127.0.0.1:$NGINX_PORT/serve/bench/" ;;
	*) echo "http://127.0.0.1:${PORT[$1]}/serve/bench/" ;;
	esac
}
measure() {
	local shape=$1 conns=$2 threads=$3 target=$4 out url args=()
	url=$(url_of "$target")
	case $shape in
	post-2k) args+=(-s "$tmp/post-2048.lua") ;;
	post-64k) args+=(-s "$tmp/post-65536.lua") ;;
	sse) url=${url}sse ;;
	esac
	out=$(wrk -t"$threads" -c"$conns" -d"$DURATION" --latency "${args[@]}" "$url")
	if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then log "wrk reported errors for $shape $target:"; log "$out"; fi
	echo "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out") $(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
}
median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A RPS P50
log "warming up ($WARMUP each)"
for shape in $SHAPES; do
	for name in $TARGETS; do
		RPS[$shape.$name]="" P50[$shape.$name]=""
		DURATION=$WARMUP measure "$shape" 32 2 "$name" >/dev/null
	done
done
for round in $(seq "$ROUNDS"); do
	for shape in $SHAPES; do
		for name in $TARGETS; do
			log "round $round: $shape $name, 32 connections"
			read -r rps _ <<<"$(measure "$shape" 32 2 "$name")"
			RPS[$shape.$name]="${RPS[$shape.$name]} $rps"
		done
		for name in $TARGETS; do
			log "round $round: $shape $name, 1 connection"
			read -r _ p50 <<<"$(measure "$shape" 1 1 "$name")"
			P50[$shape.$name]="${P50[$shape.$name]} $p50"
		done
	done
done

printf '\ngateway alternatives head to head: %s cpus, wrk, 90/10 split; median of %s round(s) of %s per measurement\n' "$(nproc)" "$ROUNDS" "$DURATION"
printf 'ratios to nginx: throughput at 32 connections / added p50 latency at 1 connection\n\n'
printf '| %-8s | %9s | %10s | %-17s | %-17s | %-17s |\n' shape "nginx r/s" "nginx +p50" "main gateway" "revproxy" "fasthttpgw"
printf '|%s|%s|%s|%s|%s|%s|\n' ---------- ----------- ------------ ------------------- ------------------- -------------------
for shape in $SHAPES; do
	for name in $TARGETS; do
		RPS[$shape.$name]=$(median <<<"${RPS[$shape.$name]# }")
		P50[$shape.$name]=$(median <<<"${P50[$shape.$name]# }")
	done
	row=$(printf '| %-8s | %9.0f | %8.0fus |' "$shape" "${RPS[$shape.nginx]}" "$(awk -v a="${P50[$shape.nginx]}" -v b="${P50[$shape.direct]}" 'BEGIN{print a-b}')")
	for a in $ALTS; do
		row+=$(awk -v nr="${RPS[$shape.nginx]}" -v dl="${P50[$shape.direct]}" -v nl="${P50[$shape.nginx]}" \
			-v r="${RPS[$shape.$a]}" -v l="${P50[$shape.$a]}" 'BEGIN {
			na = nl - dl; if (na < 1) na = 1
			printf " %6.2fx / %6.2fx |", r / nr, (l - dl) / na }')
	done
	printf '%s\n' "$row"
done
