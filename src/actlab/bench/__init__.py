"""Benchmarks run by ``actlab bench``: each returns a dataclass of measured figures (medians, one
thread, ratios to a reference measured in the same run) before anything renders it."""
