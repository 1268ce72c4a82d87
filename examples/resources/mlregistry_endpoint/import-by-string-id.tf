import {
  to = mlregistry_endpoint.churn
  id = "churn"
}
