# 90% of the traffic to v6, a 10% canary of v7. If the canary's error rate
# passes 5% over 5 minutes (after 100 requests), the gateway moves its
# weight to the stable route; the next plan shows that as drift. The
# upstreams are your model servers (the registry only routes to them).
#
# A later change of the weights or versions (say, stable to v7) is not put
# in force at once: the rollout moves it in steps of 10, 25, 50 and 100
# percent, each held 10 minutes, and rolls it back when the routes gaining
# weight fail more than 2% of their requests or answer slower than 500ms
# at the 99th percentile (judged once they have 200 requests in the step).
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

  # A copy of a tenth of the requests goes to v7 on the new GPU pool; its
  # answers are discarded, its status codes and latency recorded.
  route {
    name         = "gpu-trial"
    version      = mlregistry_model_version.v7.version
    upstream_url = "http://churn-v7-gpu:8080"
    weight       = 0
    shadow       = true
    share        = 0.1
  }

  # The same user always reaches the same route.
  sticky_header = "X-User-Id"

  guard {
    max_error_rate = 0.05
    min_requests   = 100
    window         = "5m"
  }

  rollout {
    steps           = [10, 25, 50, 100]
    bake            = "10m"
    max_error_rate  = 0.02
    max_latency_p99 = "500ms"
    min_requests    = 200
  }
  # Set to true to make apply wait until the rollout has completed (and
  # fail with the gate's message if it is rolled back).
  wait_for_rollout = false
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
