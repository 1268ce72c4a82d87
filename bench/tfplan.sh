#!/usr/bin/env bash
# bench/tfplan.sh: Terraform over the mlregistry provider against a floor
# provider, side by side in one run.
#
# The configuration: MODELS mlregistry_model resources and MODELS x
# VERSIONS mlregistry_model_version resources (default 50 x 20 = 1,000
# versions, 1,050 resources), each version with source, checksum, format,
# parameters, metrics, description and tags. The same file is applied in two
# directories:
#   real   the provider built from this tree (main.go) against a real
#          registry (`mlregistry serve` on a fresh SQLite file, admin token)
#   floor  bench/floorprovider: the same provider, resource and data source
#          schemas (taken from internal/provider at run time), CRUD in
#          memory with no I/O
# Both are installed as mlregistry/mlregistry through their own
# dev_overrides CLI configuration (TF_CLI_CONFIG_FILE), so Terraform, the
# configuration and the schemas are identical: the ratio is the provider's
# own cost (its HTTP calls and conversions) on top of Terraform's.
#
# Measured, as wall time of the terraform command and as the CPU time of
# terraform and the provider process it starts (user + system: steadier
# than wall time on a busy machine; the registry's own CPU is not in it),
# with -parallelism left at Terraform's default of 10:
#   apply (create)     apply of the whole configuration into empty state,
#                      once per run (setup)
#   plan               `terraform plan` with refresh over the 1,050
#                      resources in state; must plan no changes
#   plan -refresh=false  the same without refresh: Terraform core's own
#                      floor for this state, no Read at all
#   apply (update)     `terraform apply` changing every version's
#                      description in place (refresh, plan, 1,000 updates)
# Each round runs real and floor back to back, alternating which goes
# first; each figure is the median of ROUNDS rounds. The registry's request
# count per command (sum of mlregistry_http_requests_total from /metrics)
# is printed beside the real provider's figures.
#
# Environment: ROUNDS (default 1), MODELS (50), VERSIONS (20),
# BENCH_TF_COMMANDS (the measured commands of a round, default
# "plan plan-norefresh update"),
# BENCH_TF_PROFILE=DIR (the real provider writes a CPU profile per process
# into DIR: MLREGISTRY_PROVIDER_CPUPROFILE), KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

ROUNDS=${ROUNDS:-1}
MODELS=${MODELS:-50}
VERSIONS=${VERSIONS:-20}
COMMANDS=${BENCH_TF_COMMANDS:-plan plan-norefresh update}
for name in $COMMANDS; do
	case $name in plan | plan-norefresh | update) ;; *) echo "BENCH_TF_COMMANDS: unknown command $name" >&2; exit 2 ;; esac
done
GO=${GO:-go}

log() { printf '%s\n' "$*" >&2; }
command -v terraform >/dev/null || { log "terraform is required on PATH"; exit 1; }
command -v curl >/dev/null || { log "curl is required on PATH"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mlregistry-tfplan.XXXXXX")
server_pid=""
cleanup() {
	status=$?
	if [ -n "$server_pid" ]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [ $status -ne 0 ]; then
		log "tfplan.sh failed (exit $status); the end of the registry's log:"
		tail -n 20 "$work/server.log" >&2 2>/dev/null || true
	fi
	if [ -n "${KEEP:-}" ]; then
		log "work directory kept: $work"
	else
		rm -rf "$work"
	fi
	exit $status
}
trap cleanup EXIT

log "building the registry, the provider and the floor provider"
mkdir -p "$work/bin/real" "$work/bin/floor"
$GO build -o "$work/bin/mlregistry" ./internal/cmd/mlregistry
$GO build -o "$work/bin/real/terraform-provider-mlregistry" .
$GO build -o "$work/bin/floor/terraform-provider-mlregistry" ./bench/floorprovider

db="sqlite://$work/registry.db"
token=$("$work/bin/mlregistry" token create --db "$db" --name bench --scope admin 2>/dev/null)
"$work/bin/mlregistry" serve --listen 127.0.0.1:0 --db "$db" >"$work/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 300); do
	addr=$(grep -o 'addr=http://127.0.0.1:[0-9]*' "$work/server.log" | head -1 | cut -d= -f2 || true)
	[ -n "$addr" ] && break
	kill -0 "$server_pid" 2>/dev/null || { log "registry exited:"; cat "$work/server.log" >&2; exit 1; }
	sleep 0.1
done
[ -n "$addr" ] || { log "registry did not start:"; cat "$work/server.log" >&2; exit 1; }

for kind in real floor; do
	mkdir -p "$work/$kind"
	cat >"$work/$kind.tfrc" <<RC
provider_installation {
  dev_overrides {
    "mlregistry/mlregistry" = "$work/bin/$kind"
  }
  direct {}
}
RC
	cat >"$work/$kind/main.tf" <<HCL
terraform {
  required_providers {
    mlregistry = { source = "mlregistry/mlregistry" }
  }
}

provider "mlregistry" {}

variable "note" {
  type    = string
  default = "first"
}

resource "mlregistry_model" "m" {
  count = $MODELS
  name  = format("bench-%03d", count.index)
  owner = "bench"
  tags  = { team = "bench" }
}

resource "mlregistry_model_version" "v" {
  count       = $MODELS * $VERSIONS
  model       = mlregistry_model.m[floor(count.index / $VERSIONS)].name
  source      = "s3://bench/\${count.index}/model.onnx"
  checksum    = format("sha256:%064x", count.index)
  format      = "onnx"
  parameters  = { learning_rate = "0.01", epochs = "10" }
  metrics     = { auc = 0.91, f1 = 0.8 }
  description = "version \${count.index}: \${var.note}"
  tags        = { team = "bench" }
}
HCL
done

export MLREGISTRY_ADDR="$addr" MLREGISTRY_TOKEN="$token"
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
unset TF_LOG TF_LOG_PATH TF_CLI_ARGS TF_CLI_ARGS_plan TF_CLI_ARGS_apply
if [ -n "${BENCH_TF_PROFILE:-}" ]; then
	mkdir -p "$BENCH_TF_PROFILE"
	export MLREGISTRY_PROVIDER_CPUPROFILE
	MLREGISTRY_PROVIDER_CPUPROFILE=$(cd "$BENCH_TF_PROFILE" && pwd)
fi

# requests: the registry's request count so far (every route and status).
requests() {
	curl -fsS -H "Authorization: Bearer $token" "$addr/metrics" |
		awk '/^mlregistry_http_requests_total\{/ { n += $NF } END { printf "%d\n", n }'
}

# tf KIND NAME ARGS...: run terraform ARGS in KIND's directory, record its
# wall time in $work/times/NAME.KIND and the CPU time (user + system) of
# terraform and its provider process in NAME.KIND.cpu (one line per run)
# and, for real, the registry requests it made in NAME.requests.
mkdir -p "$work/times"
tf() {
	local kind=$1 name=$2
	shift 2
	local before=0
	[ "$kind" = real ] && before=$(requests)
	local TIMEFORMAT='%R %U %S'
	{ time (
		cd "$work/$kind" &&
			TF_CLI_CONFIG_FILE="$work/$kind.tfrc" terraform "$@" -no-color -input=false >"$work/$kind.$name.log" 2>&1
		echo $? >"$work/status"
	); } 2>"$work/time"
	local status
	status=$(cat "$work/status")
	# plan -detailed-exitcode: 0 is "no changes", the only answer wanted.
	if [ "$status" -ne 0 ]; then
		log "terraform $* ($kind) failed with exit $status:"
		tail -n 40 "$work/$kind.$name.log" >&2
		exit 1
	fi
	read -r wall user sys <"$work/time"
	echo "$wall" >>"$work/times/$name.$kind"
	awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.3f\n", u + s }' >>"$work/times/$name.$kind.cpu"
	if [ "$kind" = real ]; then
		# Less one: the /metrics request that read "before".
		echo $(($(requests) - before - 1)) >>"$work/times/$name.requests"
	fi
}

median() { sort -g "$1" | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

resources=$((MODELS + MODELS * VERSIONS))
log "apply (create): $resources resources ($MODELS models x $VERSIONS versions) with each provider"
tf real create apply -auto-approve
tf floor create apply -auto-approve

for round in $(seq 1 "$ROUNDS"); do
	if [ $((round % 2)) -eq 1 ]; then order="real floor"; else order="floor real"; fi
	log "round $round/$ROUNDS ($order first)"
	for name in $COMMANDS; do
		for kind in $order; do
			case $name in
			plan) tf "$kind" plan plan -detailed-exitcode ;;
			plan-norefresh) tf "$kind" plan-norefresh plan -refresh=false -detailed-exitcode ;;
			update) tf "$kind" update apply -auto-approve -var "note=round-$round" ;;
			esac
		done
	done
done

printf '\nTerraform %s, %d resources (%d models x %d versions), -parallelism=10 (default), ' \
	"$(TF_CLI_CONFIG_FILE="$work/real.tfrc" terraform version 2>/dev/null | awk 'NR == 1 { print $2 }')" "$resources" "$MODELS" "$VERSIONS"
printf 'median of %d round(s), create once\n' "$ROUNDS"
printf '%-22s %9s %9s %7s   %9s %9s %7s %9s\n' "command" "real s" "floor s" "ratio" "real cpu" "floor cpu" "ratio" "requests"
for name in create $COMMANDS; do
	label=$name
	case $name in
	create) label="apply (create)" ;;
	plan) label="plan (refresh)" ;;
	plan-norefresh) label="plan -refresh=false" ;;
	update) label="apply (update)" ;;
	esac
	awk -v l="$label" -v r="$(median "$work/times/$name.real")" -v f="$(median "$work/times/$name.floor")" \
		-v rc="$(median "$work/times/$name.real.cpu")" -v fc="$(median "$work/times/$name.floor.cpu")" \
		-v q="$(median "$work/times/$name.requests")" \
		'BEGIN { printf "%-22s %9.2f %9.2f %6.2fx   %9.2f %9.2f %6.2fx %9d\n", l, r, f, r / f, rc, fc, rc / fc, q }'
done
echo "(wall: median seconds of the terraform command; cpu: user + system seconds of terraform and the provider it ran;"
echo " requests: answered by the registry during the real provider's command)"
