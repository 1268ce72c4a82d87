# Unflagged versions, best AUC first.
data "mlregistry_model_versions" "by_auc" {
  model    = "churn"
  flagged  = false
  order_by = "metrics.auc desc"
}

# Versions tagged reviewed_by=alice.
data "mlregistry_model_versions" "reviewed" {
  model = "churn"
  tag   = "reviewed_by=alice"
}

output "ranking" {
  value = [for v in data.mlregistry_model_versions.by_auc.versions : { version = v.version, auc = v.metrics["auc"] }]
}
