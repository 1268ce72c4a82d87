# Quickstart: one model with a production stage policy, three versions, and
# staging/production assignments driven by two variables, so a promotion or
# a rollback is a one-line change reviewed as a plan.
#
#   terraform apply -var staging_version=2                        # v2 to staging
#   terraform apply -var staging_version=2 -var production_version=2  # promote
#   terraform apply -var staging_version=2 -var production_version=1  # roll back
#
# The provider reads MLREGISTRY_ADDR and MLREGISTRY_TOKEN.

terraform {
  required_providers {
    mlregistry = {
      source = "mlregistry/mlregistry"
    }
  }
}

provider "mlregistry" {}

variable "staging_version" {
  description = "Which release (1, 2 or 3) is in staging."
  type        = number
  default     = 1
}

variable "production_version" {
  description = "Which release (1, 2 or 3) is in production."
  type        = number
  default     = 1
}

resource "mlregistry_model" "churn" {
  name        = "churn"
  description = "Customer churn classifier"
  owner       = "ds-team"
  tags        = { team = "ds" }

  stage_policies = {
    production = {
      require_stage = "staging"
      min_metrics   = { auc = 0.85 }
    }
  }
}

resource "mlregistry_model_version" "r1" {
  model    = mlregistry_model.churn.name
  source   = "s3://models/churn/r1/model.onnx"
  checksum = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
  format   = "onnx"
  metrics  = { auc = 0.88 }
  lineage  = { run_id = "run-1", git_commit = "3f2c1e0" }
}

resource "mlregistry_model_version" "r2" {
  model    = mlregistry_model.churn.name
  source   = "s3://models/churn/r2/model.onnx"
  checksum = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
  format   = "onnx"
  metrics  = { auc = 0.92 }
  lineage  = { run_id = "run-2", git_commit = "9a7b4d2" }

  # Registered after r1, so the registry numbers them 1, 2, 3 in order.
  depends_on = [mlregistry_model_version.r1]
}

resource "mlregistry_model_version" "r3" {
  model       = mlregistry_model.churn.name
  source      = "s3://models/churn/r3/model.onnx"
  checksum    = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
  format      = "onnx"
  metrics     = { auc = 0.81 }
  description = "experiment: smaller feature set"

  depends_on = [mlregistry_model_version.r2]
}

locals {
  # Release label -> the version number the registry assigned.
  releases = {
    1 = mlregistry_model_version.r1.version
    2 = mlregistry_model_version.r2.version
    3 = mlregistry_model_version.r3.version
  }
}

resource "mlregistry_stage_assignment" "staging" {
  model   = mlregistry_model.churn.name
  stage   = "staging"
  version = local.releases[var.staging_version]
  reason  = "staging = release ${var.staging_version}"
}

resource "mlregistry_stage_assignment" "production" {
  model   = mlregistry_model.churn.name
  stage   = "production"
  version = local.releases[var.production_version]
  reason  = "production = release ${var.production_version}"

  # The production policy needs the version to have been in staging first.
  depends_on = [mlregistry_stage_assignment.staging]
}

output "staging" {
  value = mlregistry_stage_assignment.staging.version
}

output "production" {
  value = {
    version          = mlregistry_stage_assignment.production.version
    previous_version = mlregistry_stage_assignment.production.previous_version
  }
}
