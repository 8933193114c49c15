"""What a run remembers: per-round metrics from Flower's History, clients' curves and reports.

Flower metrics are scalars, so clients send their learning curves and final
classification reports as strings; the metric aggregation hooks pull those out
here and hand the numeric rest to the strategy library's weighted average.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from flwr.server import History

from strategies.legacy import weighted_metrics_mean

TEXT_KEYS = ("curve", "classification_report", "partition_id")


class Recorder:
    """Collects what the clients report beyond numbers, keyed by partition id."""

    def __init__(self) -> None:
        self.curves: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.reports: dict[int, str] = {}

    def fit_metrics(self, results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        """Flower's ``fit_metrics_aggregation_fn``: keep the curves, average the rest."""
        for _, metrics in results:
            if "curve" in metrics:
                self.curves[int(metrics["partition_id"])].append(json.loads(metrics["curve"]))
        return weighted_metrics_mean(_numeric(results))

    def evaluate_metrics(self, results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        """Flower's ``evaluate_metrics_aggregation_fn``: keep final reports, average the rest."""
        for _, metrics in results:
            if "classification_report" in metrics:
                self.reports[int(metrics["partition_id"])] = str(metrics["classification_report"])
        return weighted_metrics_mean(_numeric(results))


def _numeric(results: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    return [(n, {k: v for k, v in m.items() if k not in TEXT_KEYS}) for n, m in results]


def rounds_table(history: History) -> list[dict[str, Any]]:
    """One JSON-ready row per round (0 is the initial model) from Flower's History."""
    rows: dict[int, dict[str, Any]] = defaultdict(dict)
    for rnd, loss in history.losses_centralized:
        rows[rnd]["round"] = rnd
        rows[rnd].setdefault("test", {})["loss"] = loss
    for name, series in history.metrics_centralized.items():
        for rnd, value in series:
            target = rows[rnd] if name == "seconds" else rows[rnd].setdefault("test", {})
            target[name] = value
    for section, metrics in (
        ("fit", history.metrics_distributed_fit),
        ("evaluate", history.metrics_distributed),
    ):
        for name, series in metrics.items():
            for rnd, value in series:
                if name in ("updates_used", "updates_rejected", "failures"):
                    rows[rnd][name] = value
                else:
                    rows[rnd].setdefault(section, {})[name] = value
    for rnd, loss in history.losses_distributed:
        rows[rnd].setdefault("evaluate", {})["loss"] = loss
    return [{"round": rnd, **rows[rnd]} for rnd in sorted(rows)]
