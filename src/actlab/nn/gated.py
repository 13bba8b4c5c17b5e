"""Placeholder; its owner replaces it. Public names go in ``__all__``."""

__all__: list[str] = []
