"""Model monitoring: live quality on labelled predictions and data drift against the baseline
the trainer stored, per model version."""
