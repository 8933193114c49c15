"""What a run remembers: per-round metrics from either Flower API, clients' curves and reports.

Flower metrics are numbers, so clients send their learning curves and final
classification reports as strings; the metric aggregation hooks pull those out
here and hand the numeric rest to the strategy library's weighted average.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from flwr.app import MetricRecord, RecordDict
from flwr.server import History
from flwr.serverapp.strategy import Result
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from strategies.legacy import weighted_metrics_mean

TEXT_KEYS = ("curve", "classification_report", "partition_id")
TEXTS = "texts"  # the ConfigRecord that carries TEXT_KEYS in Message-API replies


class Recorder:
    """Collects what the clients report beyond numbers, keyed by partition id."""

    def __init__(self) -> None:
        self.curves: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.reports: dict[int, str] = {}

    def keep(self, texts: Mapping[str, Any]) -> None:
        """Store a client's curve or report, if its reply carries one."""
        if "curve" in texts:
            self.curves[int(texts["partition_id"])].append(json.loads(texts["curve"]))
        if "classification_report" in texts:
            self.reports[int(texts["partition_id"])] = str(texts["classification_report"])

    def metrics(self, results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        """Legacy ``fit/evaluate_metrics_aggregation_fn``: keep the texts, average the rest."""
        for _, metrics in results:
            self.keep(metrics)
        return weighted_metrics_mean(_numeric(results))

    def records(self, replies: list[RecordDict], weighting_key: str) -> MetricRecord:
        """Message-API ``train/evaluate_metrics_aggr_fn``: texts ride in a ConfigRecord."""
        for reply in replies:
            self.keep(reply.config_records.get(TEXTS, {}))
        return aggregate_metricrecords(replies, weighting_key)


def _numeric(results: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    return [(n, {k: v for k, v in m.items() if k not in TEXT_KEYS}) for n, m in results]


COUNTS = ("updates_used", "updates_rejected", "failures")
TIMINGS = ("seconds", "aggregation_seconds")  # the round's wall time and the server's part


def rounds_table(
    test: dict[int, dict[str, Any]],
    fit: dict[int, dict[str, Any]],
    evaluate: dict[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    """One JSON-ready row per round (0 is the initial model), whichever API produced it."""
    rows = []
    for rnd in sorted(set(test) | set(fit) | set(evaluate)):
        row: dict[str, Any] = {"round": rnd}
        scores = dict(test.get(rnd, {}))
        for timing in TIMINGS:
            if timing in scores:
                row[timing] = scores.pop(timing)
        if scores:
            row["test"] = scores
        trained = dict(fit.get(rnd, {}))
        row.update({key: trained.pop(key) for key in COUNTS if key in trained})
        if trained:
            row["fit"] = trained
        if rnd in evaluate:
            row["evaluate"] = dict(evaluate[rnd])
        rows.append(row)
    return rows


def legacy_rounds(history: History) -> list[dict[str, Any]]:
    """Rows from the legacy server's History (losses and metrics kept apart there)."""
    return rounds_table(
        _by_round(history.metrics_centralized, history.losses_centralized),
        _by_round(history.metrics_distributed_fit),
        _by_round(history.metrics_distributed, history.losses_distributed),
    )


def message_rounds(result: Result) -> list[dict[str, Any]]:
    """Rows from a Message-API strategy's Result."""
    return rounds_table(
        {r: dict(m) for r, m in result.evaluate_metrics_serverapp.items()},
        {r: dict(m) for r, m in result.train_metrics_clientapp.items()},
        {r: dict(m) for r, m in result.evaluate_metrics_clientapp.items()},
    )


def _by_round(
    metrics: dict[str, list[tuple[int, Any]]], losses: list[tuple[int, float]] = ()
) -> dict[int, dict[str, Any]]:
    rounds: dict[int, dict[str, Any]] = defaultdict(dict)
    for rnd, loss in losses:
        rounds[rnd]["loss"] = loss
    for name, series in metrics.items():
        for rnd, value in series:
            rounds[rnd][name] = value
    return dict(rounds)
