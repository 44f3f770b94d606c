"""Persistence: SQLAlchemy models, sessions, repositories and migrations."""
