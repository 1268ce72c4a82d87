resource "mlregistry_model" "churn" {
  name        = "churn"
  description = "Predicts which customers cancel next month"
  owner       = "ds-team"
  tags        = { team = "ds", domain = "retention" }

  # A version reaches production only from staging, with an AUC of at
  # least 0.85, a p99 latency of at most 50 ms and the same signature as
  # the version production serves now.
  stage_policy {
    stage                   = "production"
    require_stage           = "staging"
    min_metrics             = { auc = 0.85 }
    max_metrics             = { latency_p99_ms = 50 }
    require_signature_match = true
  }
  # The EU region follows a day later: only a version that has served
  # production for 24 hours.
  stage_policy {
    stage         = "production-eu"
    require_stage = "production"
    min_soak      = "24h"
  }
}
