"""The collector: authenticated batch ingest over HTTP into a store (docs/collector.md)."""
