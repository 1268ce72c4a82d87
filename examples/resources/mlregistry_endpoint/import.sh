# An endpoint is imported by its name.
terraform import mlregistry_endpoint.churn churn
