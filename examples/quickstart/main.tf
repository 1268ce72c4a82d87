# Quickstart: one model with a production stage policy, three versions whose
# artifacts are the files in models/ (small logistic regressions stored as
# JSON), staging and production assignments, and an endpoint that serves
# production with a canary route and a rollback guard. Variables drive every
# move, so a promotion, a canary step or a rollback is a one-line change
# reviewed as a plan.
#
#   terraform apply                                                   # v1 everywhere, 100% of traffic on v1
#   terraform apply -var staging_version=2                            # v2 to staging
#   terraform apply -var staging_version=2 -var canary_weight=10      # 10% canary of v2
#   terraform apply -var staging_version=2 -var production_version=2  # promote: 100% on v2
#   terraform apply -var staging_version=2 -var production_version=1  # roll back
#
# The provider reads MLREGISTRY_ADDR and MLREGISTRY_TOKEN. The endpoint's
# routes go to model servers, one per version:
#
#   go run ./examples/quickstart/modelserver -model examples/quickstart/models/churn-r1.json -listen 127.0.0.1:8501
#   go run ./examples/quickstart/modelserver -model examples/quickstart/models/churn-r2.json -listen 127.0.0.1:8502

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
  description = "Which release (1, 2 or 3) is in production; the endpoint's stable route serves it."
  type        = number
  default     = 1
}

variable "canary_version" {
  description = "Which release the endpoint's canary route serves."
  type        = number
  default     = 2
}

variable "canary_weight" {
  description = "Percent of the endpoint's traffic on the canary route (0: no canary route)."
  type        = number
  default     = 0

  validation {
    condition     = var.canary_weight >= 0 && var.canary_weight <= 100
    error_message = "canary_weight is a percentage, 0 to 100."
  }
}

variable "model_servers" {
  description = "Release -> base URL of the model server that serves it."
  type        = map(string)
  default = {
    1 = "http://127.0.0.1:8501"
    2 = "http://127.0.0.1:8502"
    3 = "http://127.0.0.1:8503"
  }
}

resource "mlregistry_model" "churn" {
  name        = "churn"
  description = "Customer churn classifier"
  owner       = "ds-team"
  tags        = { team = "ds" }

  stage_policy {
    stage         = "production"
    require_stage = "staging"
    min_metrics   = { auc = 0.85 }
  }
}

locals {
  # The artifacts live next to this file; the model servers load the same
  # files, and the checksums tie each registered version to its bytes. A
  # source names a file relative to this module, never an absolute path: the
  # same configuration planned from another checkout (a CI runner's) would
  # otherwise see a new artifact and replace every version.
  models = "${path.module}/models"
}

resource "mlregistry_model_version" "r1" {
  model    = mlregistry_model.churn.name
  source   = "file:models/churn-r1.json"
  checksum = "sha256:${filesha256("${local.models}/churn-r1.json")}"
  format   = "custom"
  metrics  = { auc = 0.88 }
  lineage {
    run_id     = "run-1"
    git_commit = "3f2c1e0"
  }
  description = "baseline"

  # A new artifact registers a new version: register it and move the stages
  # and routes to it before the old version, which the registry keeps while
  # a stage or route uses it, is deleted.
  lifecycle {
    create_before_destroy = true
  }
}

resource "mlregistry_model_version" "r2" {
  model    = mlregistry_model.churn.name
  source   = "file:models/churn-r2.json"
  checksum = "sha256:${filesha256("${local.models}/churn-r2.json")}"
  format   = "custom"
  metrics  = { auc = 0.92 }
  lineage {
    run_id     = "run-2"
    git_commit = "9a7b4d2"
  }
  description = "retrained on a year more of data"

  # Registered after r1, so the registry numbers them 1, 2, 3 in order.
  depends_on = [mlregistry_model_version.r1]

  # Register a replacement before deleting this version (see r1).
  lifecycle {
    create_before_destroy = true
  }
}

resource "mlregistry_model_version" "r3" {
  model       = mlregistry_model.churn.name
  source      = "file:models/churn-r3.json"
  checksum    = "sha256:${filesha256("${local.models}/churn-r3.json")}"
  format      = "custom"
  metrics     = { auc = 0.81 }
  description = "experiment: tenure only"

  depends_on = [mlregistry_model_version.r2]

  # Register a replacement before deleting this version (see r1).
  lifecycle {
    create_before_destroy = true
  }
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

# /serve/churn/ on the registry. The endpoint serves production, so every
# route's version must hold production or pass its policy: a canary of a
# version that never was in staging fails the plan.
resource "mlregistry_endpoint" "churn" {
  name  = "churn"
  model = mlregistry_model.churn.name
  stage = "production"

  route {
    name         = "stable"
    version      = mlregistry_stage_assignment.production.version
    upstream_url = var.model_servers[var.production_version]
    weight       = 100 - var.canary_weight
  }
  dynamic "route" {
    for_each = var.canary_weight == 0 ? [] : [var.canary_version]
    content {
      name         = "canary"
      version      = local.releases[route.value]
      upstream_url = var.model_servers[route.value]
      weight       = var.canary_weight
    }
  }

  # A route that fails more than 5% of 20 requests within a minute loses its
  # weight to the other route; the next plan shows that as drift.
  guard {
    max_error_rate = 0.05
    min_requests   = 20
    window         = "1m"
  }
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

output "endpoint_url" {
  value = mlregistry_endpoint.churn.url
}
