#!/usr/bin/env bash
# make demo: start a registry on a throwaway SQLite database and two model
# servers (examples/quickstart/modelserver, one per model version), apply
# examples/quickstart through a dev override, walk a canary with real
# predictions, break it so the guard rolls it back and the drift check
# reports it, review a promotion's plan summary, show a policy violation
# caught at plan time, roll back, and clean up.
#
# KEEP=1 (make demo KEEP=1) leaves the registry and the model servers
# running with what the demo applied, and prints their URLs and tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/bin"
keep=${KEEP:-}
[ "$keep" = 0 ] && keep=""

bold() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
say() { printf '  %s\n' "$*"; }
[ -x "$bin/mlregistry" ] && [ -x "$bin/terraform-provider-mlregistry" ] || { echo "run 'make build' first"; exit 1; }
command -v terraform >/dev/null || { echo "terraform is required on PATH"; exit 1; }
command -v curl >/dev/null || { echo "curl is required on PATH"; exit 1; }
command -v python3 >/dev/null || { echo "python3 is required on PATH"; exit 1; }
"${GO:-go}" build -o "$bin/modelserver" ./examples/quickstart/modelserver

work=$(mktemp -d "${TMPDIR:-/tmp}/mlregistry-demo.XXXXXX")
pids=()
cleanup() {
	status=$?
	if [ -n "$keep" ] && [ $status -eq 0 ]; then
		exit 0 # left running on purpose; the last step said how to stop it
	fi
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ $status -ne 0 ]; then
		echo "demo failed (exit $status); the end of the registry's log:"
		tail -n 30 "$work/server.log" 2>/dev/null || true
		for f in "$work"/modelserver-*.log; do
			[ -f "$f" ] && { echo "$(basename "$f"):"; tail -n 10 "$f"; }
		done
	fi
	rm -rf "$work"
	exit $status
}
trap cleanup EXIT

# start LOG CMD...: run CMD in the background, wait for the addr=... line
# it logs when it listens, and set $addr to it.
start() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	addr=""
	for _ in $(seq 1 300); do
		addr=$(grep -o 'addr=http://127.0.0.1:[0-9]*' "$log" | head -1 | cut -d= -f2 || true)
		[ -n "$addr" ] && return 0
		kill -0 "$pid" 2>/dev/null || { echo "$(basename "$log" .log) exited:"; cat "$log"; return 1; }
		sleep 0.1
	done
	echo "$(basename "$log" .log) did not start:"
	cat "$log"
	return 1
}

db="sqlite://$work/registry.db"
bold "Starting a registry on a temporary SQLite database, and a model server per version"
token=$("$bin/mlregistry" token create --db "$db" --name demo --scope admin 2>/dev/null)
serve_token=$("$bin/mlregistry" token create --db "$db" --name churn-app --scope serve --endpoints churn 2>/dev/null)
start "$work/server.log" "$bin/mlregistry" serve --listen 127.0.0.1:0 --db "$db"
registry=$addr
say "registry      $registry   (an admin token for Terraform; a serve token, good for /serve/churn/ only, for predictions)"
# The model servers load the artifacts of the copy Terraform applies, so
# each registered source is the file that is served.
cp -r examples/quickstart "$work/quickstart"
rm -rf "$work/quickstart/modelserver"
models="$work/quickstart/models"
start "$work/modelserver-1.log" env -u MODELSERVER_FAIL_RATE "$bin/modelserver" -model "$models/churn-r1.json"
server1=$addr
say "model server  $server1   loads models/churn-r1.json"
start "$work/modelserver-2.log" env -u MODELSERVER_FAIL_RATE "$bin/modelserver" -model "$models/churn-r2.json"
server2=$addr
say "model server  $server2   loads models/churn-r2.json"

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
export MLREGISTRY_ADDR="$registry" MLREGISTRY_TOKEN="$token"
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
export TF_VAR_model_servers="{ 1 = \"$server1\", 2 = \"$server2\" }"
cd "$work/quickstart"
api() { curl -fsS -H "Authorization: Bearer $token" "$registry$1"; }
mlr() { "$bin/mlregistry" "$@"; }

# tf runs one terraform command. Its whole output goes to a log; on success
# the demo shows the lines that say what changed (whole lines, never cut),
# on failure the whole output, and the demo stops: no step's failure is
# hidden.
step=0
tf() {
	step=$((step + 1))
	local log="$work/tf-$step.log"
	if ! terraform "$1" -no-color -input=false "${@:2}" >"$log" 2>&1; then
		echo "terraform $* failed:"
		sed 's/^[│╷╵] \{0,1\}//' "$log"
		return 1
	fi
	# The planned changes (up to "Plan:"), then the outcome.
	# Versions and weights are shown for in-place updates only, with the
	# endpoint route they belong to.
	awk '/^Plan:/ { print; planned = 1; next }
		!planned && /^  # .* (will be|must be)/ { print; update = /updated in-place/; route = ""; next }
		!planned && update && /^ +[~+-]? *name += "/ && match($0, /[^ ]/) > 12 {
			match($0, /"[^"]*"/); route = substr($0, RSTART, RLENGTH); next }
		!planned && update && /^ +[~+-] +(version|weight) += [^(]/ {
			line = $0; gsub(/ +=/, " =", line)
			print line (route == "" ? "" : "  (route " route ")"); next }
		/^(Apply complete|Destroy complete|No changes)/ { print }' "$log" |
		sed -e 's/^  *//' -e 's/^/  /' -e 's/^  \([~+-]\)/    \1/'
}

features='{"features":{"tenure_months":4,"monthly_charges":89.5,"support_calls":3}}'

# predict N EXPECT: N predictions through the gateway with the serve token,
# tallied by the version and route that answered (X-Model-Version,
# X-Route). EXPECT lists the versions that may answer; any other version,
# or any answer but 200, fails the demo.
predict() {
	local n=$1 expect=$2 i code v r p a line
	declare -A count=() answer=()
	for i in $(seq 1 "$n"); do
		code=$(curl -sS -o "$work/body" -D "$work/headers" -w '%{http_code}' \
			-H "Authorization: Bearer $serve_token" -H 'Content-Type: application/json' \
			-d "$features" "$registry/serve/churn/predict")
		v="" r=""
		while IFS= read -r line; do
			line=${line%$'\r'}
			case ${line,,} in
			x-model-version:*) v=${line#*: } ;;
			x-route:*) r=${line#*: } ;;
			esac
		done <"$work/headers"
		if [ "$code" != 200 ] || [[ " $expect " != *" $v "* ]]; then
			echo "  prediction $i: HTTP $code from version '${v:-?}' (route '${r:-?}'), expected 200 from v${expect// / or v}:"
			cat "$work/body"
			return 1
		fi
		count[$v]=$((${count[$v]:-0} + 1))
		line=$(<"$work/body") p=? a=?
		[[ $line =~ \"churn_probability\":([0-9.]+) ]] && p=${BASH_REMATCH[1]}
		[[ $line =~ \"artifact\":\"(sha256:[0-9a-f]{12}) ]] && a=${BASH_REMATCH[1]}
		answer[$v]="route $r, churn_probability $p (artifact $a...)"
	done
	for v in $(printf '%s\n' "${!count[@]}" | sort -n); do
		printf '    %3d x v%s  %s\n' "${count[$v]}" "$v" "${answer[$v]}"
	done
}

# weights prints the endpoint's routes as the registry reports them.
weights() {
	api /api/v1/endpoints/churn | python3 -c '
import json, sys
e = json.load(sys.stdin)
print("  endpoint churn is %s: %s" % (e["status"], ", ".join("%s v%d %d%%" % (r["name"], r["version"], r["weight"]) for r in e["routes"])))
if e.get("status_message"):
    print("  " + e["status_message"])'
}

# summary PLANFILE: the plan-summary a reviewer reads in the pull request.
summary() {
	terraform show -json "$1" >"$work/plan.json"
	mlr plan-summary "$work/plan.json" >"$work/summary.md"
	sed 's/^/  | /' "$work/summary.md"
}

bold "1. terraform apply: model churn, whose production policy wants staging first and auc >= 0.85; versions 1-3 with the checksums of models/*.json; v1 in staging and production; endpoint churn serving production"
tf apply -auto-approve
weights
say "A client calls the endpoint with its serve token:"
say "\$ curl -H 'Authorization: Bearer \$SERVE_TOKEN' -d '$features' $registry/serve/churn/predict"
code=$(curl -sS -D "$work/headers" -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $serve_token" \
	-H 'Content-Type: application/json' -d "$features" "$registry/serve/churn/predict")
[ "$code" = 200 ] || { echo "  HTTP $code:"; cat "$work/headers" "$work/body"; exit 1; }
tr -d '\r' <"$work/headers" | grep -iE '^x-(model-version|route):' | sed 's/^/  /'
say "$(cat "$work/body")"
registered=$(api /api/v1/models/churn/versions/1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["checksum"])')
grep -q "\"artifact\":\"$registered\"" "$work/body" || { echo "  the model server's artifact is not the checksum the registry holds for v1 ($registered)"; exit 1; }
say "The artifact it loaded has the checksum the registry holds for v1."
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $serve_token" "$registry/api/v1/endpoints/churn")
[ "$code" = 403 ] || { echo "  the serve token read the API: HTTP $code"; exit 1; }
say "The serve token gets 403 from the API itself (GET /api/v1/endpoints/churn): it can call the endpoint, nothing else."
say "20 predictions for the same customer:"
predict 20 1

bold "2. Put v2 in staging, then start a canary: 10% of the traffic to v2"
tf apply -auto-approve -var staging_version=2
tf apply -auto-approve -var staging_version=2 -var canary_weight=10
weights
say "50 predictions (routes are picked at random by weight):"
predict 50 "1 2"

bold "3. The canary looks good: 50/50"
tf apply -auto-approve -var staging_version=2 -var canary_weight=50
weights
say "40 predictions:"
predict 40 "1 2"

bold "4. v2's model server starts failing (POST /admin/fail?rate=1); the guard takes the canary's weight away"
curl -fsS -X POST "$server2/admin/fail?rate=1" >/dev/null
sent=0 failed=0 status=""
while [ $sent -lt 400 ]; do
	for _ in $(seq 1 10); do
		code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $serve_token" \
			-H 'Content-Type: application/json' -d "$features" "$registry/serve/churn/predict")
		sent=$((sent + 1))
		case $code in
		200) ;;
		500) failed=$((failed + 1)) ;;
		*) echo "  unexpected HTTP $code from the gateway"; exit 1 ;;
		esac
	done
	status=$(api /api/v1/endpoints/churn | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
	[ "$status" = rolled_back ] && break
done
[ "$status" = rolled_back ] || { echo "  the guard did not roll the canary back after $sent requests"; weights; exit 1; }
say "Of $sent requests, $failed were answered 500 by v2 before the guard moved the canary's weight:"
weights
say "Clients are back on v1 only:"
predict 20 1

bold "5. The scheduled drift check: terraform plan -detailed-exitcode exits 2, and plan-summary says what happened"
set +e
terraform plan -no-color -input=false -detailed-exitcode -out="$work/drift.tfplan" \
	-var staging_version=2 -var canary_weight=50 >"$work/drift.out" 2>&1
code=$?
set -e
[ "$code" -eq 2 ] || { echo "expected exit code 2 (drift), got $code"; cat "$work/drift.out"; exit 1; }
say "terraform plan exit code 2: drift detected. The drift report:"
summary "$work/drift.tfplan"
grep -q 'guard' "$work/summary.md" || { echo "the drift report does not mention the guard"; exit 1; }

bold "6. v2's server is fixed (rate=0); applying the configuration restores the 50/50 split"
curl -fsS -X POST "$server2/admin/fail?rate=0" >/dev/null
tf apply -auto-approve -var staging_version=2 -var canary_weight=50
weights
say "40 predictions:"
predict 40 "1 2"

bold "7. Promote v2 to production (100% of the traffic): the plan summary a reviewer sees in the pull request"
tf plan -out="$work/promote.tfplan" -var staging_version=2 -var production_version=2
summary "$work/promote.tfplan"
say "Approved: terraform apply of exactly that plan"
tf apply "$work/promote.tfplan"
weights
say "20 predictions, all from v2:"
predict 20 2

bold "8. Try to put v3 (auc 0.81, never in staging) into production: the PLAN fails, nothing is applied"
if terraform plan -no-color -input=false -var staging_version=2 -var production_version=3 >"$work/plan.out" 2>&1; then
	echo "expected the plan to fail on the stage policy"
	cat "$work/plan.out"
	exit 1
fi
grep -q 'Stage policy violation' "$work/plan.out" || { echo "the plan failed for another reason:"; cat "$work/plan.out"; exit 1; }
# The first error block, without Terraform's box drawing.
awk '/Error: Stage policy violation/ { on = 1 } on && /^╵/ { exit } on' "$work/plan.out" |
	sed -e 's/^[│╷╵] \{0,1\}//' -e '/^$/d' -e 's/^/  /'

bold "9. Roll production back to v1: a one-line change"
tf apply -auto-approve -var staging_version=2 -var production_version=1
weights
say "20 predictions, all from v1 again:"
predict 20 1
say "production history (newest first):"
api /api/v1/models/churn/stages/production/history |
	python3 -c '
import json, sys
for e in json.load(sys.stdin)["items"]:
    was = "v%s" % e["previous_version"] if e.get("previous_version") else "none"
    print("    v%s (was %s), %s by %s: %s" % (e["version"], was, e["action"], e["assigned_by"], e.get("reason", "")))'

if [ -n "$keep" ]; then
	cat >"$work/env.sh" <<ENV
# source this to run terraform and mlregistry against the demo's registry
export MLREGISTRY_ADDR=$registry MLREGISTRY_TOKEN=$token
export TF_CLI_CONFIG_FILE=$work/terraformrc TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
export TF_VAR_model_servers='$TF_VAR_model_servers'
export TF_VAR_staging_version=2 TF_VAR_production_version=1
ENV
	bold "Left running (KEEP=1)"
	cat <<TXT
  registry       $registry   API /api/v1, gateway /serve/churn/, /openapi.json
  web UI         $registry/ui/
  model servers  $server1 (v1), $server2 (v2)
  admin token    $token
  serve token    $serve_token   (/serve/churn/ only)
  terraform      cd $work/quickstart && source ../env.sh && terraform plan
  a prediction   curl -H 'Authorization: Bearer $serve_token' -d '$features' $registry/serve/churn/predict
  stop           kill ${pids[*]}; rm -rf $work
TXT
	exit 0
fi

bold "10. terraform destroy, and the model servers stop"
tf destroy -auto-approve -var staging_version=2 -var production_version=1

bold "Done. Where to look next"
cat <<TXT
  make demo KEEP=1        the same, but the registry, its web UI (/ui/) and the model servers stay up
  docs/guides/            getting started, promotion and rollback, canaries, CI review, operations, the API
  examples/quickstart/    the configuration this demo applied, its model artifacts and model server
  examples/ci/            pull-request plan summaries and the scheduled drift check
  GET /openapi.json       the registry API (internal/server/openapi.yaml)
TXT
