"""Statistics for verdicts: score intervals, block bootstrap, Holm, sample sizes, unit tables."""
