resource "mlregistry_model_version" "v7" {
  model  = mlregistry_model.churn.name
  source = "s3://models/churn/7/model.onnx"
  # filesha256 reads a local file at plan time: this example needs
  # build/model.onnx next to the configuration (the artifact you upload to
  # source).
  checksum = "sha256:${filesha256("build/model.onnx")}"
  format   = "onnx"

  parameters = { learning_rate = "0.05", max_depth = "8" }
  metrics    = { auc = 0.91, latency_p99_ms = 31 }

  lineage {
    run_id     = "run-42"
    git_commit = "3f2c1e0"
    dataset    = "s3://datasets/churn/2026-01"
  }

  signature {
    input {
      name  = "tenure_months"
      dtype = "float32"
      shape = [-1, 1]
    }
    input {
      name  = "plan"
      dtype = "string"
      shape = [-1, 1]
    }
    output {
      name  = "churn_probability"
      dtype = "float32"
      shape = [-1, 1]
    }
  }

  description = "Gradient-boosted trees, January data"
  tags        = { reviewed_by = "alice" }

  # Set when a version turns out to be bad: it can no longer be assigned to
  # a stage and "latest"/"best" look-ups skip it.
  flagged = false

  # A new artifact registers a new version: register it and move its stages
  # and routes to it before the old version (which the registry keeps while
  # a stage or route uses it) is deleted.
  lifecycle {
    create_before_destroy = true
  }
}

# The release before v7, with only the required fields and its metrics.
# An evaluation that finishes later adds its metrics in place (a new key in
# metrics); changing a recorded value registers a new version.
resource "mlregistry_model_version" "v6" {
  model    = mlregistry_model.churn.name
  source   = "s3://models/churn/6/model.onnx"
  checksum = "sha256:ef5021e124ccd79356bfad789c319279edc05af8443a61d84591c1f27af0789a"
  format   = "onnx"
  metrics  = { auc = 0.88, latency_p99_ms = 35 }

  # Register a replacement before deleting this version (see v7).
  lifecycle {
    create_before_destroy = true
  }
}
