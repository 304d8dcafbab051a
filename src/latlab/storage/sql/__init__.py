"""SQL adapter (SQLite by default, PostgreSQL) on SQLAlchemy 2 async, migrated with Alembic."""
