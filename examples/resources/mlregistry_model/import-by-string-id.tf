import {
  to = mlregistry_model.churn
  id = "churn"
}
