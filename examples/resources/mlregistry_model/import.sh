# A model is imported by its name.
terraform import mlregistry_model.churn churn
