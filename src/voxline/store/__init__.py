"""Persistent state in SQLite: API keys and call records."""
