"""The schema's history, run by Alembic (see ``voxline.store.database``): one revision per
change, on SQLite and PostgreSQL alike. Append revisions, never edit shipped ones."""
