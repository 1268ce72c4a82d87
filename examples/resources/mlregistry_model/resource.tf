resource "mlregistry_model" "churn" {
  name        = "churn"
  description = "Predicts which customers cancel next month"
  owner       = "ds-team"
  tags        = { team = "ds", domain = "retention" }

  stage_policies = {
    # A version reaches production only after a day in staging, with an
    # AUC of at least 0.85 and the same signature as the current one.
    production = {
      require_stage           = "staging"
      min_soak                = "24h"
      min_metrics             = { auc = 0.85 }
      max_metrics             = { latency_p99_ms = 50 }
      require_signature_match = true
    }
  }
}
