"""Prometheus metrics of one server process (a registry per app, so tests stay isolated).

Under several worker processes (``voxline.server.workers``), prometheus_client keeps each
process's values in files in ``PROMETHEUS_MULTIPROC_DIR``, and :meth:`Metrics.exposition`
adds them all up, so that any worker reports the whole server. Every sample carries the
node's name as a ``node`` label, so that the nodes of a deployment scraped through one
load balancer (or into one Prometheus) are told apart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0)
MULTIPROCESS_DIR_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE_FILE: Final = re.compile(r"gauge_live\w*?_(\d+)\.db")


class _NodeLabelled(Collector):
    """Another registry's metrics, each sample labelled with the node's name."""

    def __init__(self, source: CollectorRegistry, node: str) -> None:
        self._source = source
        self._node = node

    def collect(self) -> Iterable[Metric]:
        for metric in self._source.collect():
            metric.samples = [
                Sample(
                    sample.name,
                    {**sample.labels, "node": self._node},
                    sample.value,
                    sample.timestamp,
                    sample.exemplar,
                )
                for sample in metric.samples
            ]
            yield metric


class Metrics:
    def __init__(self, node: str) -> None:
        self.node = node
        self.registry = CollectorRegistry()
        r = self.registry
        self.active_sessions = Gauge(
            "voxline_active_sessions",
            "Sessions open now",
            registry=r,
            multiprocess_mode="livesum",  # the workers alive now, added up
        )
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

    def exposition(self) -> bytes:
        """The text exposition format: this process's metrics, or every worker's."""
        directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
        source = self.registry
        if directory is not None:
            source = CollectorRegistry()
            multiprocess.MultiProcessCollector(source, path=directory)  # type: ignore[no-untyped-call]
        labelled = CollectorRegistry()
        labelled.register(_NodeLabelled(source, self.node))
        return generate_latest(labelled)

    def start(self) -> None:
        """Under several workers: forget the live gauges of workers that died (a replaced
        worker's open sessions must not be counted forever)."""
        directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
        if directory is None:
            return
        for path in Path(directory).iterdir():
            match = _LIVE_GAUGE_FILE.fullmatch(path.name)
            if match is not None and not _alive(int(match.group(1))):
                multiprocess.mark_process_dead(int(match.group(1)), directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
        if directory is not None:
            multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]

    # SessionObserver
    def barge_in(self) -> None:
        self.barge_ins.inc()

    def turn_latency(self, stage: str, seconds: float) -> None:
        self.turn_latency_seconds.labels(stage).observe(seconds)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
