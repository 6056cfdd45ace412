"""Importers: csv, iputils ping output, fping -C output and RIPE Atlas ping JSON -> Results.

Each parser is a pure function from text to (results, problems); :mod:`analyzer.importers.cli`
writes the results through the store's ``write_batch`` so imports are chained and idempotent.
"""
