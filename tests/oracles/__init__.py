"""Simple references the property tests check the product against (test code only)."""
