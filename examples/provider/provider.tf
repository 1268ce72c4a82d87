terraform {
  required_providers {
    mlregistry = {
      source = "mlregistry/mlregistry"
    }
  }
}

variable "registry_token" {
  description = "Token created with `mlregistry token create --name terraform --scope write`."
  type        = string
  sensitive   = true
}

provider "mlregistry" {
  address = "http://127.0.0.1:8080" # or MLREGISTRY_ADDR
  token   = var.registry_token      # or MLREGISTRY_TOKEN

  # Optional: per-request timeout and retries of transient failures.
  timeout     = "30s"
  max_retries = 4
}
