#!/usr/bin/env bash
# Builds terraform-provider-mlregistry from source into a Terraform
# filesystem mirror, builds the mlregistry CLI (for plan-summary), and
# writes a Terraform CLI configuration that installs the provider from the
# mirror only. `terraform init` then works without the provider being
# published, and without network access for it.
#
# Usage: install-provider.sh SOURCE_DIR OUT_DIR
#   SOURCE_DIR  a checkout of github.com/mlregistry/terraform-provider-mlregistry
#   OUT_DIR     where the mirror, bin/ and terraformrc go (created)
# Environment:
#   MLREGISTRY_PROVIDER_VERSION  version the mirror offers (default 0.0.1)
# Prints `export` lines for TF_CLI_CONFIG_FILE and PATH; on GitHub Actions
# it also appends them to $GITHUB_ENV and $GITHUB_PATH.
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 SOURCE_DIR OUT_DIR" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
version=${MLREGISTRY_PROVIDER_VERSION:-0.0.1}
platform="$(go env GOOS)_$(go env GOARCH)"
mirror="$out/mirror"
pkgdir="$mirror/registry.terraform.io/mlregistry/mlregistry/$version/$platform"

mkdir -p "$pkgdir" "$out/bin"
(
  cd "$src"
  CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$version" -o "$pkgdir/terraform-provider-mlregistry_v$version" .
  CGO_ENABLED=0 go build -trimpath -o "$out/bin/mlregistry" ./internal/cmd/mlregistry
)

cat >"$out/terraformrc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/mlregistry/mlregistry"]
  }
  direct {
    exclude = ["registry.terraform.io/mlregistry/mlregistry"]
  }
}
RC

echo "export TF_CLI_CONFIG_FILE=$out/terraformrc"
echo "export PATH=$out/bin:\$PATH"
if [ -n "${GITHUB_ENV:-}" ]; then
  echo "TF_CLI_CONFIG_FILE=$out/terraformrc" >>"$GITHUB_ENV"
fi
if [ -n "${GITHUB_PATH:-}" ]; then
  echo "$out/bin" >>"$GITHUB_PATH"
fi
