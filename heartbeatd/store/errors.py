"""The store's one error type, below every other module of the package."""

from __future__ import annotations


class StoreError(Exception):
    """The database cannot be opened or written (disk full, read-only, I/O error)."""
