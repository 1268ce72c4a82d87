import {
  to = mlregistry_model_version.v7
  id = "churn/7"
}
