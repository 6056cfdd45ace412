"""Measurement methods: one module each, one result record (ixmeter.record.Result)."""
