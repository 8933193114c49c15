"""The ServerApp: our strategy, server-side test evaluation, and the run's outputs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.common import NDArrays, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import History, Server, ServerAppComponents, ServerConfig
from flwr.serverapp import Grid, ServerApp
from flwr.superlink.grid import InMemoryGrid

import strategies
from fl_sim import checkpoint
from fl_sim.config import RunConfig
from fl_sim.console import RunConsole
from fl_sim.data import load_mnist
from fl_sim.federation import wait_for_nodes
from fl_sim.flwr_run import config_from_context, errors_in_one_line
from fl_sim.history import Recorder, legacy_rounds, message_rounds
from fl_sim.metrics import classification_metrics, report
from fl_sim.outputs import (
    claim_output,
    plot_client_curves,
    plot_confusion,
    plot_global_curves,
    write_json,
    write_text,
)
from fl_sim.partition import label_counts, partition_of
from fl_sim.sampling import SeededClientManager
from fl_sim.scenarios import scenario_record
from fl_sim.task import global_model, predict
from fl_sim.training import set_weights

STRATEGIES = {
    "fedavg": strategies.FedAvg,
    "fedweightedavg": strategies.FedWeightedAvg,
    "fedmedian": strategies.FedMedian,
    "fedprox": strategies.FedProx,
}
MESSAGE_STRATEGIES = {
    "fedavg": strategies.message.FedAvg,
    "fedweightedavg": strategies.message.FedWeightedAvg,
    "fedmedian": strategies.message.FedMedian,
    "fedprox": strategies.message.FedProx,
}
# Beyond this many clients their curves are kept as data only: 500 plots take minutes.
CLIENT_PLOTS = 20
# Seconds between an in-process simulation's polls for client replies (Flower's: 0.1).
REPLY_POLL = 0.01


class TestSetEvaluator:
    """Flower's ``evaluate_fn``: the global model on the 10,000 MNIST test images."""

    def __init__(self, cfg: RunConfig, console: RunConsole) -> None:
        self.model = global_model(cfg.model, cfg.seed)
        self.test = load_mnist(cfg.data)
        self.console = console
        self.strategy = None  # set once built, to show its update counts
        self.last = time.perf_counter()

    def __call__(
        self, server_round: int, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, dict[str, Scalar]]:
        set_weights(self.model, parameters)
        scores = classification_metrics(self.test.y_test, predict(self.model, self.test.x_test))
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        counts = self.strategy.last_counts if self.strategy and server_round else {}
        self.console.round_line(server_round, scores, seconds, counts)
        loss = scores.pop("loss")
        if counts:
            scores["aggregation_seconds"] = self.strategy.last_seconds
        return loss, {**scores, "seconds": seconds}


class RecordingServer(Server):
    """Flower's legacy server loop, with a checkpoint after every round and a resume.

    Flower's ``Server.fit`` always starts at round 1; this loop is the same one
    (train, evaluate centrally, evaluate on the clients) started after the last
    checkpointed round, and it writes the run's outputs at the end.
    """

    def __init__(
        self, cfg: RunConfig, out: Path, strategy, recorder: Recorder, console: RunConsole
    ) -> None:
        super().__init__(client_manager=SeededClientManager(cfg.seed), strategy=strategy)
        self.cfg, self.out, self.recorder, self.console = cfg, out, recorder, console

    def fit(self, num_rounds: int, timeout: float | None) -> tuple[History, float]:
        start = time.perf_counter()
        saved = checkpoint.load(self.out) if self.cfg.resume else None
        self.console.start(num_rounds, done=saved.round if saved else 0)
        try:
            history = self._rounds(num_rounds, timeout, saved)
        finally:
            self.console.stop()
        final = parameters_to_ndarrays(self.parameters)
        write_outputs(self.cfg, self.out, legacy_rounds(history), final, self.recorder)
        return history, time.perf_counter() - start

    def _rounds(
        self, num_rounds: int, timeout: float | None, saved: checkpoint.Checkpoint | None
    ) -> History:
        if saved:
            history, first = saved.history, saved.round + 1
            self.parameters = ndarrays_to_parameters(saved.weights)
            self.recorder.curves.update(saved.curves)
        else:
            history, first = History(), 1
            self.parameters = self._get_initial_parameters(server_round=0, timeout=timeout)
            self._evaluate_centrally(0, history)
        for server_round in range(first, num_rounds + 1):
            self.client_manager().server_round = server_round
            self._train(server_round, timeout, history)
            self._evaluate_centrally(server_round, history)
            evaluated = self.evaluate_round(server_round=server_round, timeout=timeout)
            if evaluated is not None and evaluated[0] is not None:
                history.add_loss_distributed(server_round=server_round, loss=evaluated[0])
                history.add_metrics_distributed(server_round=server_round, metrics=evaluated[1])
            weights = parameters_to_ndarrays(self.parameters)
            state = checkpoint.Checkpoint(server_round, weights, history, self.recorder.curves)
            checkpoint.save(self.out, state)
        return history

    def _train(self, server_round: int, timeout: float | None, history: History) -> None:
        """One training round; its clients' updates are freed when it returns.

        ``fit_round`` also returns every client's update: kept in a variable of the
        round loop, as in Flower's ``Server.fit``, they would live on through the next
        round's training, doubling the peak memory (3.3 GB more for 500 cnn clients).
        """
        fitted = self.fit_round(server_round=server_round, timeout=timeout)
        if fitted is not None:
            self.parameters, metrics, _ = fitted
            history.add_metrics_distributed_fit(server_round=server_round, metrics=metrics)

    def _evaluate_centrally(self, server_round: int, history: History) -> None:
        result = self.strategy.evaluate(server_round, parameters=self.parameters)
        if result is not None:
            history.add_loss_centralized(server_round=server_round, loss=result[0])
            history.add_metrics_centralized(server_round=server_round, metrics=result[1])


def hyperparameters(cfg: RunConfig) -> dict[str, Scalar]:
    """The local training settings every sampled client receives."""
    return {
        "local_epochs": cfg.local_epochs,
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
    }


def fit_config(cfg: RunConfig):
    """Legacy ``on_fit_config_fn``: the hyper-parameters and the round number."""
    return lambda server_round: {"server_round": server_round, **hyperparameters(cfg)}


def evaluate_config(cfg: RunConfig):
    """Clients add sklearn's classification report in the last round's evaluation."""
    return lambda server_round: {"server_round": server_round, "final": server_round == cfg.rounds}


def make_strategy(cfg: RunConfig, initial: NDArrays, recorder: Recorder, evaluate_fn):
    """The configured strategy, wired to fl-sim's configs, hooks and evaluation."""
    extra = {"proximal_mu": cfg.proximal_mu} if cfg.strategy == "fedprox" else {}
    return STRATEGIES[cfg.strategy](
        fraction_fit=cfg.fraction_fit,
        fraction_evaluate=1.0,
        min_fit_clients=1,
        min_evaluate_clients=1,
        min_available_clients=cfg.num_clients,
        initial_parameters=ndarrays_to_parameters(initial),
        evaluate_fn=evaluate_fn,
        on_fit_config_fn=fit_config(cfg),
        on_evaluate_config_fn=evaluate_config(cfg),
        fit_metrics_aggregation_fn=recorder.metrics,
        evaluate_metrics_aggregation_fn=recorder.metrics,
        accept_failures=True,
        **extra,
    )


def prepare_run(cfg: RunConfig, console: RunConsole) -> Path:
    """Create the output folder with the config and the partition, and show the partition."""
    out = claim_output(cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {**cfg.to_dict(), **scenario_record(cfg)})
    counts = label_counts(load_mnist(cfg.data).y_train, partition_of(cfg))
    write_json(out / "partition.json", {"label_counts": counts.tolist()})
    console.partition_table(counts, f"{cfg.partition} partition: label counts per client")
    return out


def legacy_components(cfg: RunConfig, console: RunConsole) -> ServerAppComponents:
    """Everything the legacy ServerApp needs for one run of ``cfg``."""
    out = prepare_run(cfg, console)
    recorder = Recorder()
    initial = global_model(cfg.model, cfg.seed).get_weights()
    evaluator = TestSetEvaluator(cfg, console)
    strategy = evaluator.strategy = make_strategy(cfg, initial, recorder, evaluator)
    return ServerAppComponents(
        server=RecordingServer(cfg, out, strategy, recorder, console),
        config=ServerConfig(num_rounds=cfg.rounds),
    )


def run_message_api(grid: Grid, cfg: RunConfig, console: RunConsole) -> None:
    """The same run with the Message-API twin of the configured strategy."""
    out = prepare_run(cfg, console)
    recorder = Recorder()
    evaluator = TestSetEvaluator(cfg, console)
    extra = {"proximal_mu": cfg.proximal_mu} if cfg.strategy == "fedprox" else {}
    strategy = evaluator.strategy = MESSAGE_STRATEGIES[cfg.strategy](
        fraction_train=cfg.fraction_fit,
        fraction_evaluate=1.0,
        min_train_nodes=1,
        min_evaluate_nodes=1,
        min_available_nodes=cfg.num_clients,
        train_metrics_aggr_fn=recorder.records,
        evaluate_metrics_aggr_fn=recorder.records,
        **extra,
    )
    console.start(cfg.rounds)
    try:
        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(global_model(cfg.model, cfg.seed).get_weights()),
            num_rounds=cfg.rounds,
            train_config=ConfigRecord(hyperparameters(cfg)),
            evaluate_fn=lambda rnd, arrays: _metric_record(
                *evaluator(rnd, arrays.to_numpy_ndarrays(), {})
            ),
        )
    finally:
        console.stop()
    write_outputs(cfg, out, message_rounds(result), result.arrays.to_numpy_ndarrays(), recorder)


def _metric_record(loss: float, metrics: dict[str, Scalar]) -> MetricRecord:
    return MetricRecord({"loss": loss, **metrics})


def write_outputs(
    cfg: RunConfig, out: Path, rounds: list[dict], final: NDArrays, recorder: Recorder
) -> None:
    """history.json, model.keras, the test report, plots and each client's folder."""
    write_json(out / "history.json", {"rounds": rounds})
    model = global_model(cfg.model, cfg.seed)
    model.set_weights(final)
    model.save(out / "model.keras")
    test = load_mnist(cfg.data)
    probs = predict(model, test.x_test)
    write_text(out / "classification_report.txt", report(test.y_test, probs))
    title = f"{cfg.strategy}, {cfg.partition}, {cfg.num_clients} clients, {cfg.model}"
    plot_confusion(test.y_test, np.argmax(probs, axis=1), out / "confusion_matrix.png", title)
    plot_global_curves(rounds, out / "curves.png", title)
    for pid, curves in recorder.curves.items():
        folder = out / "clients" / f"client_{pid}"
        write_json(folder / "curves.json", curves)
        if len(recorder.curves) <= CLIENT_PLOTS:
            plot_client_curves(curves, folder / "curves.png", f"client {pid}")
    for pid, text in recorder.reports.items():
        write_text(out / "clients" / f"client_{pid}" / "classification_report.txt", text)


def poll_replies_often(grid: Grid) -> None:
    """Ask an in-process simulation's grid for replies every 10 ms instead of 100 ms.

    The legacy server waits on each client from its own thread, a few at a time, and
    every reply sits until that thread's next poll: with 500 small clients, 1,000
    messages a round, Flower's 0.1 s caps a round at some 60 replies a second. A poll
    of the in-memory state costs microseconds.
    """
    if isinstance(grid, InMemoryGrid):
        grid.pull_interval = REPLY_POLL


def make_server_app(cfg: RunConfig | None = None, console: RunConsole | None = None) -> ServerApp:
    """A ServerApp for ``cfg``, or reading the config from ``flwr run``'s run_config.

    ``api`` picks the Flower API the server speaks; the ClientApp answers both.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_cfg = cfg or config_from_context(context)
        poll_replies_often(grid)
        with errors_in_one_line():
            wait_for_nodes(lambda: len(list(grid.get_node_ids())), run_cfg.num_clients)
        run_console = console or RunConsole()
        if run_cfg.api == "message":
            run_message_api(grid, run_cfg, run_console)
        else:
            legacy = ServerApp(server_fn=lambda _: legacy_components(run_cfg, run_console))
            legacy(grid, context)

    return app


app = make_server_app()
