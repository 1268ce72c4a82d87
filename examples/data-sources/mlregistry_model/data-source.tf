data "mlregistry_model" "churn" {
  name = "churn"
}

output "production_policy" {
  value = data.mlregistry_model.churn.stage_policies["production"]
}
