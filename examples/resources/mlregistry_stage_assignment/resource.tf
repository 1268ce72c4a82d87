resource "mlregistry_stage_assignment" "staging" {
  model   = mlregistry_model.churn.name
  stage   = "staging"
  version = mlregistry_model_version.v7.version
  reason  = "candidate for the February release"
}

# Promote by changing `version`; roll back by changing it back. The plan
# fails early when the registry's dry run says the model's stage policy
# does not allow the assignment.
resource "mlregistry_stage_assignment" "production" {
  model   = mlregistry_model.churn.name
  stage   = "production"
  version = mlregistry_model_version.v7.version
  reason  = "AUC +0.03 over v6"

  # The production policy checks staging, so assign staging first.
  depends_on = [mlregistry_stage_assignment.staging]
}
