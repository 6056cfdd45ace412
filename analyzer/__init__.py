"""The collector, the store, metrics, verdicts and auditors' reports."""
