"""Agents: what the session talks to. ``echo`` is the loopback test line."""
