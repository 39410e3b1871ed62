"""What the transports use of the server process's shared services, declared here so that
they never import the server that hosts them: the server's ``Services`` provides it."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import Counter, Gauge

from voxline.admission import Admission
from voxline.config import Settings
from voxline.engines.vad_batch import VadBatcher
from voxline.limits.policy import LimitPolicy
from voxline.session.agent import Agent
from voxline.session.outbound import SessionObserver
from voxline.store.calls import CallRecords
from voxline.store.write_behind import WriteBehind
from voxline.telephony.esl import EventSocket
from voxline.transports.live import LiveCalls


class CallMetrics(SessionObserver, Protocol):
    """The metrics a call counts, besides what its session reports."""

    @property
    def active_sessions(self) -> Gauge: ...

    @property
    def sessions(self) -> Counter: ...

    @property
    def rejections(self) -> Counter: ...

    @property
    def audio_in(self) -> Counter: ...

    @property
    def audio_out(self) -> Counter: ...

    @property
    def dropped_frames(self) -> Counter: ...


class CallServices(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def metrics(self) -> CallMetrics: ...

    @property
    def admission(self) -> Admission: ...

    @property
    def limits(self) -> LimitPolicy: ...

    @property
    def calls(self) -> CallRecords: ...

    @property
    def call_writes(self) -> WriteBehind: ...

    @property
    def agent(self) -> Agent: ...

    @property
    def vad(self) -> VadBatcher: ...

    @property
    def event_socket(self) -> EventSocket | None:
        """FreeSWITCH call control, when its audio streams are enabled."""
        ...

    @property
    def server_name(self) -> str: ...

    @property
    def live_calls(self) -> LiveCalls: ...
