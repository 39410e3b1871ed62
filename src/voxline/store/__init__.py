"""Persistent state: API keys, agent profiles and call records, in an SQLite file or a
shared PostgreSQL."""
