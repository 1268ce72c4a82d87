# The version production serves now.
data "mlregistry_model_version" "production" {
  model = "churn"
  stage = "production"
}

# The latest version that is not flagged.
data "mlregistry_model_version" "latest" {
  model  = "churn"
  latest = true
}

# The unflagged version with the highest AUC.
data "mlregistry_model_version" "best" {
  model       = "churn"
  best_metric = "auc"
}

# The unflagged version with the lowest value of a metric where less is
# better: best_metric = "latency_p99_ms" with best_direction = "min".

# One version by number.
data "mlregistry_model_version" "v1" {
  model   = "churn"
  version = 1
}

output "production_artifact" {
  value = data.mlregistry_model_version.production.source
}
