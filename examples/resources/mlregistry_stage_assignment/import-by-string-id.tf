import {
  to = mlregistry_stage_assignment.production
  id = "churn/production"
}
