"""Counters and histograms for the hot path, kept as plain numbers and rendered for Prometheus
only when scraped.

A worker finishing 10,000 tasks a second would spend a few percent of a core in
prometheus-client's per-call locks and label look-ups; here a count is a dict update and an
observation a bisect and two additions (a worker runs one event loop: nothing to lock). A
snapshot is a JSON-able dict, so a supervisor can add up its children's (``merge``), which
prometheus-client's multiprocess mode would otherwise do with a file per metric and process.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0, 60.0, 300.0)  # fmt: skip
Labels = tuple[str, ...]


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class Family:
    """One metric's declaration: name, help, kind and label names."""

    __slots__ = ("buckets", "doc", "kind", "labels", "name")

    def __init__(
        self, name: str, doc: str, kind: str, labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:  # fmt: skip
        self.name, self.doc, self.kind = name, doc, kind
        self.labels = tuple(labels)
        self.buckets = tuple(buckets)


class Stats:
    """The values of one process; ``count``, ``observe`` and ``set`` are the hot calls."""

    def __init__(self, families: Iterable[Family]) -> None:
        self.families = {f.name: f for f in families}
        self.counters: dict[str, dict[Labels, float]] = {}
        self.gauges: dict[str, dict[Labels, float]] = {}
        self.histograms: dict[str, dict[Labels, Histogram]] = {}
        for f in self.families.values():
            {"counter": self.counters, "gauge": self.gauges}.get(f.kind, {})[f.name] = {}
            if f.kind == "histogram":
                self.histograms[f.name] = {}

    def count(self, name: str, labels: Labels = (), n: float = 1) -> None:
        values = self.counters[name]
        values[labels] = values.get(labels, 0) + n

    def set(self, name: str, labels: Labels, value: float) -> None:
        self.gauges[name][labels] = value

    def observe(self, name: str, labels: Labels, value: float) -> None:
        series = self.histograms[name]
        h = series.get(labels)
        if h is None:
            h = series[labels] = Histogram(self.families[name].buckets)
        h.observe(value)

    def snapshot(self) -> dict[str, Any]:
        """Every value, as JSON-able lists (label values, then the value or the histogram)."""
        return {
            "counters": {n: [[list(k), v] for k, v in s.items()] for n, s in self.counters.items()},
            "gauges": {n: [[list(k), v] for k, v in s.items()] for n, s in self.gauges.items()},
            "histograms": {
                n: [[list(k), h.counts, h.sum] for k, h in s.items()]
                for n, s in self.histograms.items()
            },
        }


def merge(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Add up snapshots of several processes: counters, histograms and gauges are summed (slots
    busy, free: a supervisor's total)."""
    sums: dict[str, dict[str, dict[Labels, Any]]] = {"counters": {}, "gauges": {}, "histograms": {}}
    for snap in snapshots:
        for kind in ("counters", "gauges"):
            for name, rows in snap.get(kind, {}).items():
                series = sums[kind].setdefault(name, {})
                for labels, value in rows:
                    key = tuple(labels)
                    series[key] = series.get(key, 0) + value
        for name, rows in snap.get("histograms", {}).items():
            series = sums["histograms"].setdefault(name, {})
            for labels, counts, total in rows:
                key = tuple(labels)
                if key in series:
                    old_counts, old_sum = series[key]
                    series[key] = ([a + b for a, b in zip(old_counts, counts, strict=True)],
                                   old_sum + total)  # fmt: skip
                else:
                    series[key] = (list(counts), total)
    return {
        "counters": {n: [[list(k), v] for k, v in s.items()] for n, s in sums["counters"].items()},
        "gauges": {n: [[list(k), v] for k, v in s.items()] for n, s in sums["gauges"].items()},
        "histograms": {
            n: [[list(k), c, t] for k, (c, t) in s.items()] for n, s in sums["histograms"].items()
        },
    }


def metrics(families: Mapping[str, Family], snapshot: Mapping[str, Any]) -> Iterator[Metric]:
    """A snapshot as Prometheus metric families (every declared family, even when empty)."""
    for name, f in families.items():
        if f.kind == "counter":
            c = CounterMetricFamily(name.removesuffix("_total"), f.doc, labels=f.labels)
            for labels, value in snapshot["counters"].get(name, []):
                c.add_metric(labels, value)
            yield c
        elif f.kind == "gauge":
            g = GaugeMetricFamily(name, f.doc, labels=f.labels)
            for labels, value in snapshot["gauges"].get(name, []):
                g.add_metric(labels, value)
            yield g
        else:
            h = HistogramMetricFamily(name, f.doc, labels=f.labels)
            for labels, counts, total in snapshot["histograms"].get(name, []):
                cumulative, buckets = 0, []
                for bound, n in zip([*f.buckets, math.inf], counts, strict=True):
                    cumulative += n
                    buckets.append(
                        ("+Inf" if bound == math.inf else repr(float(bound)), cumulative)
                    )
                h.add_metric(labels, buckets, total)
            yield h
