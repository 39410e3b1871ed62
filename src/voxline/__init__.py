"""voxline: a self-hosted realtime voice-agent server."""

__version__ = "0.1.0"
