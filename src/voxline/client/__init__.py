"""The Python SDK for the realtime socket; ``stream_wav`` says a WAV file into a session,
the other WAV helpers live in ``voxline.client.wav``."""

from voxline.client.sdk import (
    ClientEvent,
    Closed,
    OmniClient,
    realtime_subprotocols,
    realtime_url,
    stream_pcm,
)
from voxline.client.wav import stream_wav
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
    "stream_wav",
]
