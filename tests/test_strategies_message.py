"""The Message-API strategies: same checks and kernels as the legacy ones, Flower parity."""

import random
import subprocess
import sys
from unittest.mock import Mock

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Error,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg
from flwr.serverapp.strategy import FedMedian as FlowerFedMedian
from flwr.serverapp.strategy import FedProx as FlowerFedProx
from flwr.supercore.task_identity import TaskIdentity

import strategies
from strategies.message import FedAvg, FedMedian, FedProx, FedWeightedAvg


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    """Messages take their run and sender from the task creating them; a test is none."""
    for name, value in [("_task_id", 1), ("_run_id", 1), ("_node_id", 0)]:
        monkeypatch.setattr(TaskIdentity, name, value)


GLOBAL = {"conv": np.zeros(2, np.float32), "dense": np.zeros((1, 2), np.float32)}


def record(arrays):
    return ArrayRecord({key: Array(value) for key, value in arrays.items()})


def instruction(node_id):
    return Message(RecordDict(), dst_node_id=node_id, message_type=MessageType.TRAIN)


def reply(arrays, num_examples=1, node_id=1, **metrics):
    """A ClientApp's answer to a train message, laid out as Flower's strategies expect."""
    content = RecordDict(
        {
            "arrays": record(arrays),
            "metrics": MetricRecord({"num-examples": num_examples, **metrics}),
        }
    )
    return Message(content, reply_to=instruction(node_id))


def update(a, b, c, d, dtype=np.float32):
    return {"conv": np.array([a, b], dtype), "dense": np.array([[c, d]], dtype)}


def grid(num_nodes=3):
    mock = Mock(spec=Grid)
    mock.get_node_ids.return_value = list(range(1, num_nodes + 1))
    return mock


def started(strategy, arrays=GLOBAL):
    """The strategy as `Strategy.start` leaves it before aggregate_train."""
    list(strategy.configure_train(1, record(arrays), ConfigRecord(), grid()))
    return strategy


def as_numpy(arrays):
    return {key: array.numpy() for key, array in arrays.items()}


def good_replies():
    """Three usable replies, with weights 1, 1 and 2."""
    return [
        reply(update(1, 2, 3, 4), 1, node_id=1, loss=1.0),
        reply(update(3, 0, 5, 4), 1, node_id=2, loss=2.0),
        reply(update(8, 4, 1, 4), 2, node_id=3, loss=4.0),
    ]


def bad_replies():
    missing_weight = Message(
        RecordDict({"arrays": record(update(0, 0, 0, 0)), "metrics": MetricRecord({"loss": 0.0})}),
        reply_to=instruction(7),
    )
    return [
        reply(update(np.nan, 0, 0, 0), 100, node_id=4),
        reply({"conv": np.zeros(3, np.float32), "dense": np.zeros((1, 2), np.float32)}, node_id=5),
        reply({"other": np.zeros(2, np.float32), "dense": np.zeros((1, 2), np.float32)}, node_id=6),
        missing_weight,
    ]


def error_reply():
    return Message(Error(code=0, reason="client crashed"), reply_to=instruction(9))


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (FedAvg(), update(4, 2, 3, 4)),
        (FedWeightedAvg(), update(5, 2.5, 2.5, 4)),
        (FedMedian(), update(3, 2, 3, 4)),
        (FedProx(proximal_mu=0.1), update(5, 2.5, 2.5, 4)),
    ],
    ids=repr,
)
def test_bad_replies_are_left_out_and_counted(strategy, expected, caplog):
    replies = [*bad_replies()[:2], *good_replies(), *bad_replies()[2:], error_reply()]
    caplog.set_level("WARNING", logger="flwr")
    strategy = started(strategy)
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert 0 < strategy.last_seconds < 10  # the aggregation's wall time, for apps to report
    assert list(arrays.keys()) == ["conv", "dense"]
    for key, got in as_numpy(arrays).items():
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected[key], rtol=1e-6)
    # Flower's weighted metric average over the used replies only: (1 + 2 + 2 * 4) / 4.
    assert metrics["loss"] == pytest.approx(2.75)
    assert (metrics["updates_used"], metrics["updates_rejected"], metrics["failures"]) == (3, 4, 1)
    for node, words in [
        (4, "array 0 has NaN or infinite values"),
        (5, "array 0 has shape (3,), expected (2,)"),
        (6, "array keys ['dense', 'other'] differ"),
        (7, "no number under 'num-examples'"),
    ]:
        assert f"left out the reply of node {node}: {words}" in caplog.text


@pytest.mark.parametrize("strategy_class", [FedAvg, FedWeightedAvg, FedMedian, FedProx])
def test_without_a_usable_reply_the_previous_arrays_are_kept(strategy_class):
    strategy = started(strategy_class())
    arrays, metrics = strategy.aggregate_train(1, [*bad_replies(), error_reply()])
    assert arrays is strategy.global_arrays
    assert dict(metrics) == {"updates_used": 0, "updates_rejected": 4, "failures": 1}


def test_fedprox_sends_proximal_mu_in_the_train_config():
    messages = FedProx(proximal_mu=0.25).configure_train(
        2, record(GLOBAL), ConfigRecord({"lr": 0.1}), grid()
    )
    configs = [dict(message.content["config"]) for message in messages]
    assert configs == [{"lr": 0.1, "proximal-mu": 0.25, "server-round": 2}] * 3


@pytest.mark.parametrize("mu", [-1.0, float("nan")])
def test_fedprox_rejects_a_negative_mu(mu):
    with pytest.raises(ValueError, match="proximal_mu"):
        FedProx(proximal_mu=mu)


def test_the_message_strategies_are_flowers_with_another_aggregation():
    for ours, flowers in [(FedAvg, FlowerFedAvg), (FedMedian, FlowerFedAvg)]:
        assert issubclass(ours, flowers)
    assert strategies.message.FedWeightedAvg is FedWeightedAvg
    assert repr(FedMedian()) == "FedMedian"


def test_importing_strategies_needs_neither_tensorflow_nor_fl_sim():
    code = "import sys, strategies; print(sorted({'tensorflow', 'fl_sim'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stderr


# Flower parity on random replies with several layer shapes and dtypes.
SHAPES = {"a": ((3, 3, 1, 4), np.float32), "b": ((4,), np.float32), "c": ((7, 5), np.float64)}


def random_replies(num_clients, seed):
    rng = np.random.default_rng(seed)
    return [
        reply(
            {
                key: rng.standard_normal(shape).astype(dtype)
                for key, (shape, dtype) in SHAPES.items()
            },
            int(rng.integers(1, 1000)),
            node_id=i + 1,
            loss=float(rng.random()),
        )
        for i in range(num_clients)
    ]


@pytest.mark.parametrize("num_clients", [1, 2, 5, 8])
@pytest.mark.parametrize(
    ("ours", "flowers", "rtol"),
    [
        (FedWeightedAvg(), FlowerFedAvg(), 1e-6),
        (FedMedian(), FlowerFedMedian(), 0),
        (FedProx(proximal_mu=0.5), FlowerFedProx(proximal_mu=0.5), 1e-6),
    ],
    ids=["FedWeightedAvg", "FedMedian", "FedProx"],
)
def test_equal_to_flower(ours, flowers, rtol, num_clients):
    """Equal to `rtol` relative to the size of the values (float32 sums in another
    order differ by a few ulps of the terms)."""
    replies = random_replies(num_clients, seed=num_clients)
    reference = as_numpy(replies[0].content["arrays"])
    arrays, metrics = started(ours, reference).aggregate_train(1, replies)
    # Flower's FedMedian pops the arrays out of the replies: it gets its own.
    their_arrays, their_metrics = flowers.aggregate_train(
        1, random_replies(num_clients, num_clients)
    )
    assert list(arrays.keys()) == list(their_arrays.keys())
    for (key, got), want in zip(
        as_numpy(arrays).items(), as_numpy(their_arrays).values(), strict=True
    ):
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
    assert metrics["loss"] == pytest.approx(their_metrics["loss"], rel=1e-12)


@pytest.mark.parametrize("num_clients", [1, 4, 7])
def test_fedavg_is_the_unweighted_mean(num_clients):
    replies = random_replies(num_clients, seed=num_clients)
    updates = [as_numpy(r.content["arrays"]) for r in replies]
    arrays, _ = started(FedAvg(), updates[0]).aggregate_train(1, replies)
    for key, got in as_numpy(arrays).items():
        want = np.mean(np.stack([u[key] for u in updates]), axis=0)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


BAD_KINDS = {
    "missing array": {"conv": np.array([9, 9], np.float32)},
    "extra array": {**update(9, 9, 9, 9), "extra": np.zeros(1, np.float32)},
    "wrong shape": {"conv": np.zeros(3, np.float32), "dense": np.zeros((1, 2), np.float32)},
    "wrong dtype": update(9, 9, 9, 9, dtype=np.float64),
    "NaN": update(np.nan, 9, 9, 9),
    "infinity": update(9, 9, -np.inf, 9),
}


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize(
    "make",
    [FedAvg, FedWeightedAvg, FedMedian, lambda: FedProx(proximal_mu=0.1)],
    ids=["FedAvg", "FedWeightedAvg", "FedMedian", "FedProx"],
)
def test_each_kind_of_bad_reply_never_reaches_the_model(make, kind):
    """The aggregate with one bad reply equals the aggregate without it."""
    clean, _ = started(make()).aggregate_train(1, good_replies())
    bad = reply(BAD_KINDS[kind], 1000, node_id=8)
    mixed, metrics = started(make()).aggregate_train(1, [bad, *good_replies()])
    for key, want in as_numpy(clean).items():
        np.testing.assert_array_equal(as_numpy(mixed)[key], want)
    assert metrics["updates_rejected"] == 1 and metrics["updates_used"] == 3


@pytest.mark.parametrize(
    "make",
    [FedAvg, FedWeightedAvg, FedMedian, lambda: FedProx(proximal_mu=0.1)],
    ids=["FedAvg", "FedWeightedAvg", "FedMedian", "FedProx"],
)
def test_the_arrays_do_not_depend_on_the_order_of_the_replies(make):
    """Replies are read one at a time in an order given by their bytes, not by arrival."""
    replies = random_replies(6, seed=3)
    reference = as_numpy(replies[0].content["arrays"])
    models = set()
    for seed in range(4):
        shuffled = random.Random(seed).sample(replies, len(replies))
        arrays, metrics = started(make(), reference).aggregate_train(1, shuffled)
        assert metrics["updates_used"] == 6
        models.add(tuple(array.data for array in arrays.values()))
    assert len(models) == 1


def test_a_reply_not_serialized_by_numpy_is_left_out(caplog):
    foreign = reply(update(0, 0, 0, 0), node_id=8)
    foreign.content["arrays"]["dense"] = Array(
        dtype="float32", shape=(1, 2), stype="torch.Tensor", data=b"\0" * 8
    )
    caplog.set_level("WARNING", logger="flwr")
    _, metrics = started(FedAvg()).aggregate_train(1, [foreign, *good_replies()])
    assert (metrics["updates_used"], metrics["updates_rejected"]) == (3, 1)
    assert "node 8: arrays ['dense'] are not serialized by NumPy" in caplog.text
