# A version is imported as <model>/<version>.
terraform import mlregistry_model_version.v7 churn/7
