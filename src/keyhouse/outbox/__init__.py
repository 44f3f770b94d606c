"""Side effects written in the same transaction as a change, delivered by a worker."""
