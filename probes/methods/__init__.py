"""Measurement methods: one module each, one result record (ixmeter.core.record.Result)."""
