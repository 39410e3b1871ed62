"""Persistent state in SQLite: API keys, agent profiles and call records."""
