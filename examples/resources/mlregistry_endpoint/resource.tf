# 90% of the traffic to v6, a 10% canary of v7. If the canary's error rate
# passes 5% over 5 minutes (after 100 requests), the gateway moves its
# weight to the stable route; the next plan shows that as drift. The
# upstreams are your model servers (the registry only routes to them).
resource "mlregistry_endpoint" "churn" {
  name  = "churn"
  model = mlregistry_model.churn.name

  route {
    name         = "stable"
    version      = mlregistry_model_version.v6.version
    upstream_url = "http://churn-v6:8080"
    weight       = 90
  }
  route {
    name         = "canary"
    version      = mlregistry_model_version.v7.version
    upstream_url = "http://churn-v7:8080"
    weight       = 10
  }

  # The same user always reaches the same route.
  sticky_header = "X-User-Id"

  guard {
    max_error_rate = 0.05
    min_requests   = 100
    window         = "5m"
  }
}

output "churn_url" {
  value = mlregistry_endpoint.churn.url
}

# An endpoint that serves the production stage: the registry refuses routes
# to versions that neither hold production nor satisfy the model's
# production policy, and `terraform plan` fails early on such a change.
resource "mlregistry_endpoint" "churn_production" {
  name  = "churn-production"
  model = mlregistry_model.churn.name
  stage = "production"

  route {
    name         = "production"
    version      = mlregistry_stage_assignment.production.version
    upstream_url = "http://churn-production:8080"
    weight       = 100
  }
}
