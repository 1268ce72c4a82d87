#!/usr/bin/env bash
# Scheduled drift check: `terraform plan -detailed-exitcode` against the
# registry. When the plan is not empty it prints the plan summary, whose
# drift section says what changed outside Terraform and who changed it
# (stage history, audit log: a stage moved by hand, a guard rollback),
# and fails.
#
# Usage: drift-check.sh [WORKDIR]   (default: .)
# Environment:
#   MLREGISTRY_ADDR, MLREGISTRY_TOKEN  the registry (a read token is enough)
#   MLREGISTRY    the mlregistry binary (default: from PATH)
#   GITHUB_STEP_SUMMARY  when set (GitHub Actions), the summary goes there too
# Exit status: 0 no changes; 1 drift, or configuration not applied yet, or
# an error.
set -uo pipefail

workdir=${1:-.}
cd "$workdir" || exit 1
mlregistry=${MLREGISTRY:-mlregistry}

terraform init -input=false -no-color >/dev/null || { echo "drift-check.sh: terraform init failed" >&2; exit 1; }
terraform plan -input=false -lock=false -no-color -detailed-exitcode -out=drift.tfplan >drift-plan.log 2>&1
code=$?
case "$code" in
  0)
    echo "No drift: the registry matches the configuration."
    exit 0
    ;;
  2) ;;
  *)
    cat drift-plan.log >&2
    echo "drift-check.sh: terraform plan failed (exit $code)" >&2
    exit 1
    ;;
esac

terraform show -json drift.tfplan >drift-plan.json || exit 1
"$mlregistry" plan-summary --fail-on drift drift-plan.json >drift-summary.md
summary_code=$?
cat drift-summary.md
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat drift-summary.md >>"$GITHUB_STEP_SUMMARY"
fi
case "$summary_code" in
  5)
    echo "drift-check.sh: the registry drifted from the configuration (see the Drift section above)" >&2
    ;;
  0)
    echo "drift-check.sh: no drift, but the configuration has changes that were never applied (see above)" >&2
    ;;
  *)
    echo "drift-check.sh: mlregistry plan-summary failed (exit $summary_code)" >&2
    ;;
esac
exit 1
