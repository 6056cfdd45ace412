"""STAMP (RFC 8762, RFC 8972): pure codec, sans-IO sessions and a thin trio I/O layer."""
