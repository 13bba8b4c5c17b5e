"""Verification against the arbitrary-precision oracle (SymPy definitions evaluated by mpmath)."""
