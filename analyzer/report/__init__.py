"""Auditors' reports: JSON (the reproducible record), CSV, HTML and PDF, with provenance."""
