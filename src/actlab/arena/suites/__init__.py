"""Embedded arena suites, one TOML file each (``actlab arena --suite NAME``); see actlab.arena.config."""
