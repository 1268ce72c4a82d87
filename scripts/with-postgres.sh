#!/usr/bin/env bash
# Runs a command with MLREGISTRY_TEST_POSTGRES_DSN pointing at a PostgreSQL
# server, so the store's conformance suite runs its PostgreSQL pass.
#
#   scripts/with-postgres.sh go test ./internal/store/...
#
# - MLREGISTRY_TEST_POSTGRES_DSN already set: runs the command as is.
# - initdb on PATH (or in /usr/lib/postgresql/*/bin): starts a throwaway
#   server (trust auth, loopback, fsync off) in a temporary directory on a
#   free port, runs the command, stops the server and removes the directory.
#   As root the server runs as the postgres user (PostgreSQL refuses root).
# - neither: prints a notice and runs the command without PostgreSQL.
#
# The command's exit status is this script's exit status.
set -euo pipefail

if [[ $# -eq 0 ]]; then
	echo "usage: $0 COMMAND [ARGS...]" >&2
	exit 2
fi

if [[ -n "${MLREGISTRY_TEST_POSTGRES_DSN:-}" ]]; then
	exec "$@"
fi

find_pg_bin() {
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
		return 0
	fi
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

if ! pg_bin="$(find_pg_bin)"; then
	echo "with-postgres: initdb not found; running without PostgreSQL (the PostgreSQL pass will be skipped)" >&2
	exec "$@"
fi

# free_port asks the kernel for an unused loopback port.
free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
		return
	fi
	local port
	for ((port = 55432; port < 56432; port++)); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	echo "with-postgres: no free port found" >&2
	return 1
}

as_pg=()
if [[ "$(id -u)" -eq 0 ]]; then
	if ! id postgres >/dev/null 2>&1; then
		echo "with-postgres: running as root needs a postgres user to own the server" >&2
		exit 1
	fi
	as_pg=(runuser -u postgres --)
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/mlregistry-pg.XXXXXX")"
if [[ ${#as_pg[@]} -gt 0 ]]; then
	chown postgres: "$dir"
fi
chmod 700 "$dir"
data="$dir/data"
started=0

cleanup() {
	local status=$?
	if [[ $started -eq 1 ]]; then
		"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! "${as_pg[@]}" "$pg_bin/initdb" -D "$data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1; then
	echo "with-postgres: initdb failed:" >&2
	cat "$dir/initdb.log" >&2
	exit 1
fi

port="$(free_port)"
if ! "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$data" -l "$dir/server.log" \
	-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
	-w -t 60 start >/dev/null; then
	echo "with-postgres: server did not start:" >&2
	cat "$dir/server.log" >&2 || true
	exit 1
fi
started=1

export MLREGISTRY_TEST_POSTGRES_DSN="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
echo "with-postgres: $("$pg_bin/pg_ctl" --version) on 127.0.0.1:$port" >&2

# Not exec: the trap must stop the server when the command ends.
status=0
"$@" || status=$?
exit "$status"
