"""Limits on connections, concurrent sessions and daily audio, over a shared state backend."""
