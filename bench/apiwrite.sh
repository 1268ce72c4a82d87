#!/usr/bin/env bash
# bench/apiwrite.sh: version creates through the real HTTP API, 8 writers,
# on SQLite (WAL, synchronous=FULL) with group commit off (before) and on
# (after), and on PostgreSQL, in one run (bench/apiwrite/main.go says how).
#
# PostgreSQL: MLREGISTRY_BENCH_POSTGRES_DSN when set; otherwise, when initdb
# is on PATH (or in /usr/lib/postgresql/*/bin), a throwaway server with the
# durable defaults (fsync=on, synchronous_commit=on, full_page_writes=on:
# unlike scripts/with-postgres.sh, which turns them off to make tests
# fast), so both databases fsync every acknowledged commit. Without either,
# SQLite only.
#
# Arguments go to the program, e.g. bench/apiwrite.sh -duration 10s -rounds 3
# or -idempotency-key, -shared-model, -cpuprofile DIR, -inprocess. With wrk
# on PATH, each round also measures the group-commit configuration with wrk
# (-wrk): the program's figure and wrk's must agree.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_args=()
if [[ -n "${MLREGISTRY_BENCH_POSTGRES_DSN:-}" ]]; then
	pg_args=(-postgres "$MLREGISTRY_BENCH_POSTGRES_DSN")
else
	pg_bin=""
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		pg_bin="$(dirname "$(command -v initdb)")"
	else
		for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
			if [[ -x "$d/initdb" ]]; then pg_bin="$d"; break; fi
		done
	fi
	if [[ -n "$pg_bin" ]]; then
		as_pg=()
		if [[ "$(id -u)" -eq 0 ]]; then as_pg=(runuser -u postgres --); fi
		dir="$(mktemp -d "${TMPDIR:-/tmp}/apiwrite-pg.XXXXXX")"
		if [[ ${#as_pg[@]} -gt 0 ]]; then chown postgres: "$dir"; fi
		chmod 700 "$dir"
		cleanup() {
			"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
			rm -rf "$dir"
		}
		trap cleanup EXIT
		"${as_pg[@]}" "$pg_bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >"$dir/initdb.log" 2>&1
		port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
		"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=100" -w -t 60 start >/dev/null
		pg_args=(-postgres "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable")
		echo "apiwrite: $("$pg_bin/pg_ctl" --version), fsync on, synchronous_commit on" >&2
	else
		echo "apiwrite: no PostgreSQL (set MLREGISTRY_BENCH_POSTGRES_DSN or install initdb): SQLite only" >&2
	fi
fi
wrk_args=()
if command -v wrk >/dev/null 2>&1; then wrk_args=(-wrk); fi
go run ./bench/apiwrite "${pg_args[@]}" "${wrk_args[@]}" "$@"
