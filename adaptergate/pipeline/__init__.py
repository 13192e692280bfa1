"""The pipeline: options become a gate job, the job runs (holdout → scoring → decision), the outcome is recorded."""
