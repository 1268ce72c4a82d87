# A stage assignment is imported as <model>/<stage>.
terraform import mlregistry_stage_assignment.production churn/production
