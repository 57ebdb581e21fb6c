"""The analysis of finished runs: paired statistics over seeds, comparisons and verdicts, and
the rounds that add seeds. No training, no MLflow."""
