data "mlregistry_endpoint" "churn" {
  name = "churn"
}

# After a guard rollback: status = "rolled_back" and the moved weights.
output "churn_routing" {
  value = {
    status = data.mlregistry_endpoint.churn.status
    routes = { for r in data.mlregistry_endpoint.churn.routes : r.name => r.weight }
  }
}
