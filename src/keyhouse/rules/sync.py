"""A key's ``syncState``, derived from its revisions (never stored)."""

from __future__ import annotations


def sync_state(deleting: bool, revision: int, applied: int, failed: int | None) -> str:
    """deleting (a tombstone until the lock confirms), failed (the lock refused this revision),
    applied (the lock holds this revision), or pending."""
    if deleting:
        return "deleting"
    if failed is not None and failed >= revision:
        return "failed"
    if applied >= revision:
        return "applied"
    return "pending"
