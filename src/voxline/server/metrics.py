"""Prometheus metrics of one server process (a registry per app, so tests stay isolated)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.active_sessions = Gauge("voxline_active_sessions", "Sessions open now", registry=r)
        self.sessions = Counter(
            "voxline_sessions", "Sessions ended, by close code", ["close_code"], registry=r
        )
        self.rejections = Counter(
            "voxline_rejections", "Connections or requests refused, by code", ["code"], registry=r
        )
        self.audio_in = Counter("voxline_audio_in_seconds", "Caller audio received", registry=r)
        self.audio_out = Counter("voxline_audio_out_seconds", "Agent audio sent", registry=r)
        self.barge_ins = Counter(
            "voxline_barge_ins", "Agent replies cut off by the caller", registry=r
        )
        self.dropped_frames = Counter(
            "voxline_dropped_frames", "Client messages dropped by the demux", ["reason"], registry=r
        )
        self.turn_latency_seconds = Histogram(
            "voxline_turn_latency_seconds",
            "Per-turn latency from the end of caller speech, by stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    # SessionObserver
    def barge_in(self) -> None:
        self.barge_ins.inc()

    def turn_latency(self, stage: str, seconds: float) -> None:
        self.turn_latency_seconds.labels(stage).observe(seconds)
