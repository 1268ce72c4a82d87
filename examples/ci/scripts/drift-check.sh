#!/usr/bin/env bash
# Scheduled drift check: `terraform plan -detailed-exitcode` against the
# registry. When the plan is not empty it prints the plan summary, whose
# drift section says what changed outside Terraform and who changed it
# (stage history, audit log: a stage moved by hand, a version flagged, a
# guard rollback, a flag drain), and fails.
#
# When the plan itself fails (say, the configuration still sends traffic
# to a version someone flagged), the drift is what the on-call needs most:
# the script then makes a refresh-only plan, which reads the registry and
# plans no change (so no check can refuse it), and prints its drift
# report after the plan's error.
#
# Usage: drift-check.sh [WORKDIR] [-- TERRAFORM PLAN ARGS...]   (default: .)
#   e.g. drift-check.sh infra/registry -- -var-file=prod.tfvars
# Environment:
#   MLREGISTRY_ADDR, MLREGISTRY_TOKEN  the registry (a read token is enough)
#   MLREGISTRY    the mlregistry binary (default: from PATH)
#   SUMMARY_FILE  when set, the summary is also written there (a CI artifact)
#   GITHUB_STEP_SUMMARY  when set (GitHub Actions), the summary goes there too
# Exit status: 0 no changes; 1 drift, or configuration not applied yet, or
# an error. Plans and logs go to a temporary directory removed on exit, so
# nothing is left in WORKDIR but what `terraform init` writes.
set -uo pipefail

workdir=.
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  workdir=$1
  shift
fi
[ "${1:-}" = "--" ] && shift
cd "$workdir" || exit 1
mlregistry=${MLREGISTRY:-mlregistry}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/drift-check.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# summarise PLANFILE: print the plan summary (and add it to the job
# summary); its exit status is plan-summary's with --fail-on drift.
summarise() {
  terraform show -json "$1" >"$tmp/plan.json" || return 1
  "$mlregistry" plan-summary --fail-on drift "$tmp/plan.json" >"$tmp/summary.md"
  local code=$?
  cat "$tmp/summary.md"
  if [ -n "${SUMMARY_FILE:-}" ]; then
    cp "$tmp/summary.md" "$SUMMARY_FILE"
  fi
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat "$tmp/summary.md" >>"$GITHUB_STEP_SUMMARY"
  fi
  return "$code"
}

# A CLI configuration with dev_overrides (the getting-started guide's) needs
# no init, and its init fails while the provider is not published: go on,
# and show init's error only if the plan fails too.
init_failed=
terraform init -input=false -no-color >"$tmp/init.log" 2>&1 || init_failed=1
terraform plan -input=false -lock=false -no-color -detailed-exitcode -out="$tmp/drift.tfplan" "$@" >"$tmp/plan.log" 2>&1
code=$?
case "$code" in
  0)
    echo "No drift: the registry matches the configuration."
    exit 0
    ;;
  2)
    summarise "$tmp/drift.tfplan"
    summary_code=$?
    case "$summary_code" in
      5) echo "drift-check.sh: the registry drifted from the configuration (see the Drift section above)" >&2 ;;
      0) echo "drift-check.sh: no drift, but the configuration has changes that were never applied (see above)" >&2 ;;
      *) echo "drift-check.sh: mlregistry plan-summary failed (exit $summary_code)" >&2 ;;
    esac
    exit 1
    ;;
esac

if [ -n "$init_failed" ]; then
  cat "$tmp/init.log" >&2
  echo "drift-check.sh: terraform init failed" >&2
fi
cat "$tmp/plan.log" >&2
echo "drift-check.sh: terraform plan failed (exit $code); reading the drift with a refresh-only plan" >&2
terraform plan -refresh-only -input=false -lock=false -no-color -detailed-exitcode -out="$tmp/refresh.tfplan" "$@" >"$tmp/refresh.log" 2>&1
refresh_code=$?
case "$refresh_code" in
  0 | 2)
    # A refresh-only plan exits 2 with -detailed-exitcode even when it
    # finds nothing, so the summary decides whether anything drifted.
    summarise "$tmp/refresh.tfplan"
    case $? in
      5) echo "drift-check.sh: the registry drifted from the configuration (see the Drift section above), and the plan fails (see its error above)" >&2 ;;
      0) echo "drift-check.sh: nothing drifted; the plan fails for the reason above" >&2 ;;
      *) echo "drift-check.sh: mlregistry plan-summary failed on the refresh-only plan; the plan fails for the reason above" >&2 ;;
    esac
    ;;
  *)
    cat "$tmp/refresh.log" >&2
    echo "drift-check.sh: the refresh-only plan failed too (exit $refresh_code)" >&2
    ;;
esac
exit 1
