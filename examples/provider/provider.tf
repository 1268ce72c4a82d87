terraform {
  required_providers {
    mlregistry = {
      source = "mlregistry/mlregistry"
    }
  }
}

# The address and the token come from MLREGISTRY_ADDR and MLREGISTRY_TOKEN
# (a token made with `mlregistry token create --name terraform --scope write`),
# so one configuration runs against any registry. Set them here only to pin
# one registry:
#
#   address = "https://registry.example.com"
#   token   = var.registry_token # sensitive; never logged
provider "mlregistry" {
  # Optional: per-request timeout and retries of transient failures.
  timeout     = "30s"
  max_retries = 4
}
