"""Persistence: SQLAlchemy models and the only commit/rollback boundary (``session``)."""
