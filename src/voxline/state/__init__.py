"""Expiring state shared by server processes: browser tokens, rates and concurrency slots."""
