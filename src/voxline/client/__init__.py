"""The Python SDK for the realtime socket; WAV helpers live in ``voxline.client.wav``."""

from voxline.client.sdk import (
    ClientEvent,
    Closed,
    OmniClient,
    realtime_subprotocols,
    realtime_url,
    stream_pcm,
)
from voxline.protocol.server_messages import AgentAudio, ServerEvent

__all__ = [
    "AgentAudio",
    "ClientEvent",
    "Closed",
    "OmniClient",
    "ServerEvent",
    "realtime_subprotocols",
    "realtime_url",
    "stream_pcm",
]
