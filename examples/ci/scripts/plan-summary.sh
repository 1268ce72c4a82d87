#!/usr/bin/env bash
# Runs `terraform plan` in a working directory and writes the review
# summary (`mlregistry plan-summary`) as Markdown for a pull-request
# comment. When the plan itself fails (a stage policy violation found by
# the provider's dry run, say), the summary says so and quotes the error,
# so the comment still tells the reviewer what is wrong.
#
# Usage: plan-summary.sh [WORKDIR]   (default: .)
# Environment:
#   MLREGISTRY_ADDR, MLREGISTRY_TOKEN  the registry (a read token is enough)
#   SUMMARY_FILE  where the Markdown goes (default WORKDIR/plan-summary.md)
#   FAIL_ON       passed to --fail-on (error, warning, drift, comma-separated)
#   MLREGISTRY    the mlregistry binary (default: from PATH)
# Exit status: 0 when the plan and summary succeeded (and no FAIL_ON
# condition holds), non-zero otherwise; the summary file is written anyway.
set -uo pipefail

workdir=${1:-.}
cd "$workdir" || exit 1
summary=${SUMMARY_FILE:-$PWD/plan-summary.md}
mlregistry=${MLREGISTRY:-mlregistry}
marker='<!-- mlregistry-plan-summary -->'
tmp=$(mktemp -d "${TMPDIR:-/tmp}/plan-summary.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
log=$tmp/log

failed() {
  {
    echo "$marker"
    echo "## mlregistry plan summary"
    echo
    echo "### ❌ $1"
    echo
    echo '```text'
    tail -n 80 "$log"
    echo '```'
  } >"$summary"
  cat "$log" >&2
  echo "plan-summary.sh: $1 (see $summary)" >&2
  exit 1
}

terraform init -input=false -no-color >"$log" 2>&1 || failed "terraform init failed"
terraform plan -input=false -lock=false -no-color -out="$tmp/tfplan" >"$log" 2>&1 || failed "terraform plan failed"
terraform show -json "$tmp/tfplan" >"$tmp/plan.json" 2>"$log" || failed "terraform show -json failed"

args=()
if [ -n "${FAIL_ON:-}" ]; then
  args+=(--fail-on "$FAIL_ON")
fi
{
  echo "$marker"
  "$mlregistry" plan-summary "${args[@]}" "$tmp/plan.json"
} >"$summary"
code=$?
cat "$summary"
exit "$code"
