"""Strategies for Flower's legacy API (`flwr.server.strategy`, NumPyClient).

They reuse Flower's FedAvg for client sampling, configuration, failures and
evaluation, and replace only the aggregation of training results: every update is
checked against the current global model, the usable ones go through the strategy's
kernel, and a round without any usable update keeps the previous global model.
"""

from collections.abc import Callable
from logging import WARNING
from numbers import Real
from typing import Any

from flwr.common import (
    FitIns,
    FitRes,
    MetricsAggregationFn,
    NDArrays,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
)
from flwr.common.logger import log
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg as FlowerFedAvg

from . import aggregation
from .aggregation import FAILURES, UPDATES_REJECTED, UPDATES_USED

EvaluateFn = Callable[[int, NDArrays, dict[str, Scalar]], tuple[float, dict[str, Scalar]] | None]


def weighted_metrics_mean(metrics: list[tuple[int, dict[str, Scalar]]]) -> dict[str, Scalar]:
    """Average every numeric metric over the clients that report it, weighted by their
    numbers of examples; flags (bool) and text cannot be averaged and are left out."""
    totals: dict[str, float] = {}
    examples: dict[str, int] = {}
    for num_examples, client_metrics in metrics:
        for key, value in client_metrics.items():
            if isinstance(value, Real) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0.0) + num_examples * float(value)
                examples[key] = examples.get(key, 0) + num_examples
    return {key: total / examples[key] for key, total in totals.items() if examples[key]}


class FedAvg(FlowerFedAvg):
    """Federated Averaging with the unweighted mean of the original study.

    Takes Flower's FedAvg arguments (except `inplace`); the metrics aggregation
    functions default to `weighted_metrics_mean`.
    """

    kernel: aggregation.Kernel = aggregation.Mean
    # The latest round's counts, for apps that report them as rounds go by.
    last_counts: dict[str, int] = {}  # replaced, never mutated
    last_seconds: float | None = None  # the latest aggregation's wall time

    def __init__(
        self,
        *,
        fraction_fit: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_fit_clients: int = 2,
        min_evaluate_clients: int = 2,
        min_available_clients: int = 2,
        evaluate_fn: EvaluateFn | None = None,
        on_fit_config_fn: Callable[[int], dict[str, Scalar]] | None = None,
        on_evaluate_config_fn: Callable[[int], dict[str, Scalar]] | None = None,
        accept_failures: bool = True,
        initial_parameters: Parameters | None = None,
        fit_metrics_aggregation_fn: MetricsAggregationFn | None = weighted_metrics_mean,
        evaluate_metrics_aggregation_fn: MetricsAggregationFn | None = weighted_metrics_mean,
    ) -> None:
        super().__init__(
            fraction_fit=fraction_fit,
            fraction_evaluate=fraction_evaluate,
            min_fit_clients=min_fit_clients,
            min_evaluate_clients=min_evaluate_clients,
            min_available_clients=min_available_clients,
            evaluate_fn=evaluate_fn,
            on_fit_config_fn=on_fit_config_fn,
            on_evaluate_config_fn=on_evaluate_config_fn,
            accept_failures=accept_failures,
            initial_parameters=initial_parameters,
            fit_metrics_aggregation_fn=fit_metrics_aggregation_fn,
            evaluate_metrics_aggregation_fn=evaluate_metrics_aggregation_fn,
        )
        self.global_parameters: Parameters | None = None

    def __repr__(self) -> str:
        """Name the strategy, e.g. in Flower's logs."""
        return type(self).__name__

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        """Hand out the initial parameters, and remember them as the global model."""
        self.global_parameters = super().initialize_parameters(client_manager)
        return self.global_parameters

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Configure training, and remember the global model the updates must match."""
        self.global_parameters = parameters
        return super().configure_fit(server_round, parameters, client_manager)

    @aggregation.timed
    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Aggregate the usable updates; without any, keep the previous global model."""
        if failures and not self.accept_failures:
            self.last_counts = {UPDATES_USED: 0, UPDATES_REJECTED: 0, FAILURES: len(failures)}
            return None, dict(self.last_counts)
        if self.global_parameters is None:
            raise RuntimeError("aggregate_fit needs the global model sent in configure_fit")
        outcome = aggregation.aggregate_valid(
            self.kernel,
            [aggregation.Update(res.parameters.tensors, res.num_examples) for _, res in results],
            aggregation.read_arrays(self.global_parameters.tensors),
        )
        for index, reason in outcome.rejected:
            log(
                WARNING,
                "Round %s: left out client %s: %s",
                server_round,
                results[index][0].cid,
                reason,
            )

        metrics: dict[str, Scalar] = {}
        if self.fit_metrics_aggregation_fn and outcome.used:
            used = [results[i][1] for i in outcome.used]
            metrics = self.fit_metrics_aggregation_fn([(r.num_examples, r.metrics) for r in used])
        self.last_counts = {
            UPDATES_USED: len(outcome.used),
            UPDATES_REJECTED: len(outcome.rejected),
            FAILURES: len(failures),
        }
        metrics = {**metrics, **self.last_counts}
        if outcome.arrays is None:
            log(WARNING, "Round %s: no usable update, keeping the global model", server_round)
            return self.global_parameters, metrics
        return ndarrays_to_parameters(outcome.arrays), metrics


class FedWeightedAvg(FedAvg):
    """Federated Averaging weighted by the clients' numbers of examples (McMahan et al.)."""

    kernel = aggregation.WeightedMean


class FedMedian(FedAvg):
    """Coordinate-wise median of the updates (Yin et al., 2018), robust to outliers."""

    kernel = aggregation.Median


class FedProx(FedWeightedAvg):
    """FedProx (Li et al., 2018): weighted FedAvg on the server, and a proximal term
    `proximal_mu / 2 * ||w - w_global||^2` that clients add to their loss.

    Every fit config carries `proximal_mu`, on top of what `on_fit_config_fn` returns.
    """

    def __init__(self, *, proximal_mu: float, **kwargs: Any) -> None:
        """Take ``proximal_mu`` and FedWeightedAvg's (so Flower's FedAvg's) arguments."""
        if not proximal_mu >= 0:
            raise ValueError(f"proximal_mu must be >= 0, got {proximal_mu}")
        super().__init__(**kwargs)
        self.proximal_mu = proximal_mu

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Configure training with the proximal factor mu added to each config."""
        return [
            (client, FitIns(ins.parameters, {**ins.config, "proximal_mu": self.proximal_mu}))
            for client, ins in super().configure_fit(server_round, parameters, client_manager)
        ]
