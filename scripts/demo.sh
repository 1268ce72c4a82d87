#!/usr/bin/env bash
# make demo: start a registry on a throwaway SQLite database, apply
# examples/quickstart through a dev override, promote, show a policy
# violation caught at plan time, roll back, and clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/bin"

bold() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
[ -x "$bin/mlregistry" ] && [ -x "$bin/terraform-provider-mlregistry" ] || { echo "run 'make build' first"; exit 1; }
command -v terraform >/dev/null || { echo "terraform is required on PATH"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mlregistry-demo.XXXXXX")
server_pid=""
cleanup() {
	status=$?
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [ $status -ne 0 ]; then
		echo "demo failed (exit $status); server log:"; cat "$work/server.log" 2>/dev/null || true
	fi
	rm -rf "$work"
	exit $status
}
trap cleanup EXIT

db="sqlite://$work/registry.db"
bold "Creating an admin token (shown once, stored hashed)"
token=$("$bin/mlregistry" token create --db "$db" --name demo --scope admin 2>/dev/null)
echo "token: ${token:0:8}... (redacted)"

bold "Starting the registry on a temporary SQLite database"
"$bin/mlregistry" serve --listen 127.0.0.1:0 --db "$db" >"$work/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
	addr=$(grep -o 'addr=http://127.0.0.1:[0-9]*' "$work/server.log" | head -1 | cut -d= -f2 || true)
	[ -n "$addr" ] && break
	kill -0 "$server_pid" 2>/dev/null || { echo "server exited"; exit 1; }
	sleep 0.1
done
[ -n "$addr" ] || { echo "server did not start"; exit 1; }
echo "registry at $addr (pid $server_pid)"

# The locally built provider, without a registry download.
cat >"$work/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "mlregistry/mlregistry" = "$bin"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/terraformrc"
export MLREGISTRY_ADDR="$addr" MLREGISTRY_TOKEN="$token"
export TF_IN_AUTOMATION=1
cp -r examples/quickstart "$work/quickstart"
cd "$work/quickstart"
api() { curl -fsS -H "Authorization: Bearer $token" "$addr$1"; }

# tf runs one terraform command. Its whole output goes to a log; on success
# the demo shows the lines that say what changed (whole lines, never cut),
# on failure the whole output, and the demo stops: no step's failure is
# hidden.
step=0
tf() {
	step=$((step + 1))
	local log="$work/tf-$step.log"
	if ! terraform "$@" -no-color -input=false >"$log" 2>&1; then
		echo "terraform $* failed:"
		sed 's/^[│╷╵] \{0,1\}//' "$log"
		return 1
	fi
	# The planned changes (up to "Plan:"), then the outcome.
	awk '/^Plan:/ { print; planned = 1; next }
		!planned && (/^  # .* (will be|must be)/ || /^ +[~+-] +(version|weight) /) { print; next }
		/^(Apply complete|Destroy complete|No changes)/ { print }' "$log" |
		sed -e 's/^  *//' -e 's/^/  /' -e 's/^  \([~+-]\)/    \1/'
}

bold "1. terraform apply: model churn with a production policy, versions 1-3, staging = production = v1"
tf apply -auto-approve

bold "2. Promote v2: first to staging, then (a second apply, once v2 has held staging) to production"
tf apply -auto-approve -var staging_version=2
tf apply -auto-approve -var staging_version=2 -var production_version=2
echo "  production now: $(api /api/v1/models/churn/stages/production)"

bold "3. Try to put v3 (auc 0.81, never in staging) into production: the PLAN fails, nothing is applied"
if terraform plan -no-color -input=false -var staging_version=2 -var production_version=3 >"$work/plan.out" 2>&1; then
	echo "expected the plan to fail on the stage policy"; cat "$work/plan.out"; exit 1
fi
grep -q 'Stage policy violation' "$work/plan.out" || { echo "the plan failed for another reason:"; cat "$work/plan.out"; exit 1; }
# The error block, without Terraform's box drawing.
sed -n '/Error: Stage policy violation/,/^[╵]/p' "$work/plan.out" | sed -e 's/^[│╷╵] \{0,1\}//' -e '/^$/d' -e 's/^/  /'

bold "4. Roll production back to v1"
tf apply -auto-approve -var staging_version=2 -var production_version=1
echo "  production history (newest first):"
api /api/v1/models/churn/stages/production/history |
	python3 -c 'import json,sys; [print("    v%-2s <- v%-2s %-8s by %s" % (e["version"], e["previous_version"], e["action"], e["assigned_by"])) for e in json.load(sys.stdin)["items"]]'

bold "5. Someone moves production by hand; terraform plan -detailed-exitcode reports the drift"
curl -fsS -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
	-d '{"version":2,"reason":"hotfix by hand"}' "$addr/api/v1/models/churn/stages/production" >/dev/null
set +e
terraform plan -no-color -input=false -detailed-exitcode -var staging_version=2 -var production_version=1 >"$work/drift.out" 2>&1
code=$?
set -e
[ "$code" -eq 2 ] || { echo "expected exit code 2 (drift), got $code"; cat "$work/drift.out"; exit 1; }
sed -n '/Terraform will perform the following actions/,$p' "$work/drift.out" | grep -E '^ +# .* will be updated|^ +~ +version ' | sed -e 's/^  *//' -e 's/^/  /'
echo "  plan exit code 2: drift detected"

bold "6. terraform destroy"
tf destroy -auto-approve -var staging_version=2 -var production_version=1

bold "Done. Where to look next"
cat <<TXT
  README.md               the tour: provider block, resources, rollback, drift check in CI
  examples/quickstart/    the configuration this demo applied
  docs/                   provider reference (generated by tfplugindocs)
  internal/server/openapi.yaml, GET /openapi.json   the registry API
  audit log:              GET /api/v1/events
TXT
