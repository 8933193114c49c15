"""Strategies for Flower's Message API (`flwr.serverapp.strategy`).

Drop-in replacements for Flower's FedAvg, FedMedian and FedProx (same constructor
arguments), plus FedWeightedAvg. They aggregate exactly like the legacy strategies in
`strategies.legacy`: a reply whose arrays do not fit the global model is left out, and
a round without any usable reply keeps the previous global arrays.

Unlike Flower's FedAvg, `FedAvg` here is the unweighted mean of the original study;
`FedWeightedAvg` is Flower's FedAvg.
"""

from collections.abc import Callable, Iterable
from logging import INFO, WARNING
from numbers import Real

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.constant import SType
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

from . import aggregation
from .aggregation import FAILURES, UPDATES_REJECTED, UPDATES_USED

MetricsAggrFn = Callable[[list[RecordDict], str], MetricRecord]


class FedAvg(FlowerFedAvg):
    """Federated Averaging with the unweighted mean of the original study."""

    kernel: aggregation.Kernel = aggregation.Mean
    global_arrays: ArrayRecord | None = None  # set by configure_train
    # The latest round's counts, for apps that report them as rounds go by.
    last_counts: dict[str, int] = {}  # replaced, never mutated
    last_seconds: float | None = None  # the latest aggregation's wall time

    def __repr__(self) -> str:
        """Name the strategy."""
        return type(self).__name__

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Configure training, and remember the global arrays the replies must match."""
        self.global_arrays = arrays
        return super().configure_train(server_round, arrays, config, grid)

    @aggregation.timed
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Aggregate the usable replies; without any, keep the previous global arrays."""
        if self.global_arrays is None:
            raise RuntimeError("aggregate_train needs the arrays sent in configure_train")
        # Malformed replies are left out below instead of failing the whole round.
        replies, errors = self._check_and_log_replies(replies, is_train=True, validate=False)
        keys = list(self.global_arrays.keys())
        readable, rejected = [], []
        for reply in replies:
            unpacked = _unpack(reply.content, keys, self.weighted_by_key)
            if isinstance(unpacked, str):
                rejected.append((reply, unpacked))
            else:
                readable.append((reply, unpacked))

        outcome = aggregation.aggregate_valid(
            self.kernel,
            [update for _, update in readable],
            self.global_arrays.to_numpy_ndarrays(),
        )
        rejected += [(readable[i][0], reason) for i, reason in outcome.rejected]
        for reply, reason in rejected:
            log(
                WARNING,
                "Round %s: left out the reply of node %s: %s",
                server_round,
                reply.metadata.src_node_id,
                reason,
            )

        used = [readable[i][0].content for i in outcome.used]
        metrics = self.train_metrics_aggr_fn(used, self.weighted_by_key) if used else MetricRecord()
        self.last_counts = {
            UPDATES_USED: len(used),
            UPDATES_REJECTED: len(rejected),
            FAILURES: len(errors),
        }
        for key, count in self.last_counts.items():
            metrics[key] = count
        if outcome.arrays is None:
            log(WARNING, "Round %s: no usable reply, keeping the global arrays", server_round)
            return self.global_arrays, metrics
        arrays = ArrayRecord(
            {key: Array(array) for key, array in zip(keys, outcome.arrays, strict=True)}
        )
        return arrays, metrics


class FedWeightedAvg(FedAvg):
    """Federated Averaging weighted by `weighted_by_key` (Flower's FedAvg)."""

    kernel = aggregation.WeightedMean


class FedMedian(FedAvg):
    """Coordinate-wise median of the replies (Yin et al., 2018), robust to outliers."""

    kernel = aggregation.Median


class FedProx(FedWeightedAvg):
    """FedProx (Li et al., 2018): weighted FedAvg on the server, and a proximal term
    `mu / 2 * ||w - w_global||^2` that clients add to their loss.

    Like Flower's FedProx, it sends mu in the train ConfigRecord as "proximal-mu".
    """

    def __init__(
        self,
        fraction_train: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_train_nodes: int = 2,
        min_evaluate_nodes: int = 2,
        min_available_nodes: int = 2,
        weighted_by_key: str = "num-examples",
        arrayrecord_key: str = "arrays",
        configrecord_key: str = "config",
        train_metrics_aggr_fn: MetricsAggrFn | None = None,
        evaluate_metrics_aggr_fn: MetricsAggrFn | None = None,
        proximal_mu: float = 0.0,
    ) -> None:
        if not proximal_mu >= 0:
            raise ValueError(f"proximal_mu must be >= 0, got {proximal_mu}")
        super().__init__(
            fraction_train=fraction_train,
            fraction_evaluate=fraction_evaluate,
            min_train_nodes=min_train_nodes,
            min_evaluate_nodes=min_evaluate_nodes,
            min_available_nodes=min_available_nodes,
            weighted_by_key=weighted_by_key,
            arrayrecord_key=arrayrecord_key,
            configrecord_key=configrecord_key,
            train_metrics_aggr_fn=train_metrics_aggr_fn,
            evaluate_metrics_aggr_fn=evaluate_metrics_aggr_fn,
        )
        self.proximal_mu = proximal_mu

    def summary(self) -> None:
        """Log the strategy's configuration, mu first."""
        log(INFO, "\t├──> FedProx settings:")
        log(INFO, "\t│\t└── Proximal mu: %s", self.proximal_mu)
        super().summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Configure training with the proximal factor mu in the config."""
        config["proximal-mu"] = self.proximal_mu
        return super().configure_train(server_round, arrays, config, grid)


def _unpack(content: RecordDict, keys: list[str], weighted_by_key: str) -> aggregation.Update | str:
    """Return a reply's serialized arrays in the global model's key order and its
    weight, or why they cannot be had."""
    if len(content.array_records) != 1 or len(content.metric_records) != 1:
        return "expected exactly one ArrayRecord and one MetricRecord"
    record = next(iter(content.array_records.values()))
    if set(record.keys()) != set(keys):
        return f"array keys {sorted(record.keys())} differ from the global model's"
    weight = next(iter(content.metric_records.values())).get(weighted_by_key)
    if not isinstance(weight, Real) or isinstance(weight, bool):
        return f"no number under '{weighted_by_key}' in its MetricRecord"
    not_numpy = [key for key in keys if record[key].stype != SType.NUMPY]
    if not_numpy:
        return f"arrays {not_numpy} are not serialized by NumPy"
    return aggregation.Update([record[key].data for key in keys], float(weight))
