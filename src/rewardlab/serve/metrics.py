"""The server's Prometheus metrics, in a registry of their own (one per app), all named with the
``rewardlab_`` prefix. Labels stay low-cardinality: endpoint, HTTP code, status, reward label."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from rewardlab.runtime.engine import RunStats

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class _Restarts(Collector):
    """``rewardlab_worker_restarts_total``: pool workers replaced (a crash or a timeout), read
    from the Runtime's pool at scrape time."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("rewardlab_worker_restarts", "Pool workers replaced after a crash or timeout.")
        family.add_metric([], float(self._read()))
        yield family


class Metrics:
    """Every metric the server exposes; `text()` is the Prometheus exposition."""

    def __init__(self, fingerprint: str, version: str, restarts: Callable[[], int]) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("rewardlab_requests", "HTTP requests answered, by endpoint and code.",
                                ["endpoint", "code"], registry=r)
        self.latency = Histogram("rewardlab_request_duration_seconds", "Time to answer a request.",
                                 ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.samples = Counter("rewardlab_samples", "Samples scored, by the status of the final score.",
                               ["status"], registry=r)
        self.reward_samples = Counter("rewardlab_reward_samples",
                                      "Scores made by each reward of the spec, by status.",
                                      ["reward", "status"], registry=r)
        self.batch_size = Histogram("rewardlab_batch_size", "Samples per batch sent to the Runtime.",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("rewardlab_batch_duration_seconds", "Time the Runtime took per batch.",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("rewardlab_queue_depth", "Samples waiting for a batch.", registry=r)
        self.inflight = Gauge("rewardlab_inflight_requests", "Scoring requests being answered.", registry=r)
        self.cache_hits = Counter("rewardlab_cache_hits", "Leaf scores read from the cache.", registry=r)
        self.computed = Counter("rewardlab_computed", "Leaf scores computed (not from the cache).", registry=r)
        self.deadline_exceeded = Counter("rewardlab_deadline_exceeded",
                                         "Samples answered with an error: not scored within the request deadline.",
                                         registry=r)
        self.fallbacks = Counter("rewardlab_fallbacks",
                                 "/get_reward samples sent the fallback value (score not ok).", registry=r)
        info = Gauge("rewardlab_build_info", "The served spec and rewardlab version (value 1).",
                     ["version", "fingerprint"], registry=r)
        info.labels(version, fingerprint).set(1)
        r.register(_Restarts(restarts))

    def record_batch(self, size: int, seconds: float, stats: RunStats | None) -> None:
        """What one batch did (its size, its time, and the Runtime's statistics for it)."""
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        if stats is None:
            return
        for status, n in stats.final.items():
            self.samples.labels(status).inc(n)
        for label, counts in stats.statuses.items():
            for status, n in counts.items():
                self.reward_samples.labels(label, status).inc(n)
        self.cache_hits.inc(stats.cache_hits)
        self.computed.inc(stats.computed)

    def text(self) -> bytes:
        return generate_latest(self.registry)
