"""All four Message-API strategies in one real Flower simulation (Ray, 3 SuperNodes).

Client k (partition k = 0, 1, 2) trains on 10 * (k + 1) examples and adds
(k + 1) ** 2 + proximal-mu to every weight; client 2 diverges (NaN) in round 2, so the
strategies must leave it out. Increments 1, 4, 9 make the mean, weighted mean and
median differ, so each strategy's final arrays can only be right by its own formula.
"""

import numpy as np
import pytest
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from strategies import message

INITIAL = [np.zeros((2, 3), np.float32), np.linspace(0, 1, 4)]  # float32 and float64 layers

client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    k = int(context.node_config["partition-id"])
    config = msg.content["config"]
    step = (k + 1) ** 2 + float(config.get("proximal-mu", 0.0))
    arrays = [a + np.asarray(step, a.dtype) for a in msg.content["arrays"].to_numpy_ndarrays()]
    if k == 2 and config["server-round"] == 2:
        arrays[0][0, 0] = np.nan
    metrics = MetricRecord({"num-examples": 10 * (k + 1), "step": step})
    return Message(RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics}), reply_to=msg)


@client_app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    loss = float(sum(a.sum() for a in msg.content["arrays"].to_numpy_ndarrays()))
    metrics = MetricRecord({"num-examples": 1, "loss": loss})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


# Total increment after round 1 (clients 0, 1, 2) plus round 2 (clients 0, 1).
EXPECTED_STEP = {
    "FedAvg": (1 + 4 + 9) / 3 + (1 + 4) / 2,
    "FedWeightedAvg": (10 * 1 + 20 * 4 + 30 * 9) / 60 + (10 * 1 + 20 * 4) / 30,
    "FedMedian": 4 + (1 + 4) / 2,
    "FedProx": (10 * 1 + 20 * 4 + 30 * 9) / 60 + (10 * 1 + 20 * 4) / 30 + 2 * 0.5,
}


@pytest.mark.slow  # 30-45 s on 2 cores, mostly starting Ray and its actors
def test_each_message_strategy_in_a_real_simulation():
    # Wait for all 3 nodes: with Flower's default of 2, a loaded machine can start
    # round 1 before the third node is up, and the expected sums assume all three.
    everyone = {"min_available_nodes": 3, "min_train_nodes": 3}
    strategies = [
        message.FedAvg(**everyone),
        message.FedWeightedAvg(**everyone),
        message.FedMedian(**everyone),
        message.FedProx(proximal_mu=0.5, **everyone),
    ]
    results = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        # One simulation, hence one Ray start, for all strategies.
        for strategy in strategies:
            results[repr(strategy)] = strategy.start(
                grid=grid, initial_arrays=ArrayRecord(INITIAL), num_rounds=2
            )

    run_simulation(
        server_app,
        client_app,
        num_supernodes=3,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {
                "num_cpus": 2,
                "include_dashboard": False,
                "logging_level": "error",
                "log_to_driver": False,
            },
        },
    )

    assert set(results) == set(EXPECTED_STEP)
    for name, result in results.items():
        final = result.arrays.to_numpy_ndarrays()
        for got, initial in zip(final, INITIAL, strict=True):
            assert got.dtype == initial.dtype, name
            np.testing.assert_allclose(got, initial + EXPECTED_STEP[name], rtol=1e-6, err_msg=name)
        used = [result.train_metrics_clientapp[r]["updates_used"] for r in (1, 2)]
        rejected = [result.train_metrics_clientapp[r]["updates_rejected"] for r in (1, 2)]
        assert (used, rejected) == ([3, 2], [0, 1]), name
    assert results["FedProx"].train_metrics_clientapp[1]["step"] == pytest.approx(
        (10 * 1.5 + 20 * 4.5 + 30 * 9.5) / 60
    )
