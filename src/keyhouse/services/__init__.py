"""Use cases. Each runs in the caller's transaction and touches only the caller's account."""
