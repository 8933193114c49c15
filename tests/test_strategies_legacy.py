"""The legacy-API strategies: checks, kernels, counts and configs, and Flower parity."""

import random
from unittest.mock import Mock

import numpy as np
import pytest
from flwr.common import (
    Code,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg as FlowerFedAvg
from flwr.server.strategy import FedMedian as FlowerFedMedian
from flwr.server.strategy import FedProx as FlowerFedProx

from strategies import FedAvg, FedMedian, FedProx, FedWeightedAvg
from strategies.legacy import weighted_metrics_mean

GLOBAL = [np.zeros(2, np.float32), np.zeros((1, 2), np.float32)]


def fit_res(arrays, num_examples=1, **metrics):
    return FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), num_examples, metrics)


def client(cid):
    proxy = Mock(spec=ClientProxy)
    proxy.cid = cid
    return proxy


def results_of(*fit_results):
    return [(client(str(i)), res) for i, res in enumerate(fit_results)]


def update(a, b, c, d, dtype=np.float32):
    return [np.array([a, b], dtype), np.array([[c, d]], dtype)]


def started(strategy, arrays=GLOBAL):
    """The strategy as Flower's server leaves it before aggregate_fit: it has handed out
    the global model."""
    strategy.initial_parameters = ndarrays_to_parameters(arrays)
    strategy.initialize_parameters(SimpleClientManager())
    return strategy


# Three good updates (weights 1, 1, 2) and two bad ones.
GOOD = [fit_res(update(1, 2, 3, 4)), fit_res(update(3, 0, 5, 4)), fit_res(update(8, 4, 1, 4), 2)]
BAD = [
    fit_res(update(np.nan, 0, 0, 0), 100),
    fit_res([np.zeros(3, np.float32), np.zeros((1, 2), np.float32)], 100),
]


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
def test_bad_updates_are_left_out_and_counted(strategy, expected):
    results = results_of(GOOD[0], BAD[0], GOOD[1], BAD[1], GOOD[2])
    failures = [RuntimeError("client crashed")]
    strategy = started(strategy)
    assert strategy.last_seconds is None
    parameters, metrics = strategy.aggregate_fit(1, results, failures)
    for got, want in zip(parameters_to_ndarrays(parameters), expected, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert metrics == {"updates_used": 3, "updates_rejected": 2, "failures": 1}
    assert 0 < strategy.last_seconds < 10  # the aggregation's wall time, for apps to report


@pytest.mark.parametrize("strategy_class", [FedAvg, FedWeightedAvg, FedMedian])
def test_without_a_usable_update_the_previous_model_is_kept(strategy_class):
    strategy = started(strategy_class())
    parameters, metrics = strategy.aggregate_fit(1, results_of(*BAD), [])
    for got, want in zip(parameters_to_ndarrays(parameters), GLOBAL, strict=True):
        np.testing.assert_array_equal(got, want)
    assert metrics == {"updates_used": 0, "updates_rejected": 2, "failures": 0}


def test_the_global_model_followed_is_the_one_sent_for_training():
    """After a round, updates are checked against the new global model."""
    strategy = started(FedAvg())
    new_global = [np.zeros(3, np.float32)]
    strategy.configure_fit(2, ndarrays_to_parameters(new_global), client_manager())
    good_before, good_now = fit_res(update(1, 1, 1, 1)), fit_res([np.ones(3, np.float32)])
    parameters, metrics = strategy.aggregate_fit(2, results_of(good_before, good_now), [])
    np.testing.assert_array_equal(parameters_to_ndarrays(parameters)[0], np.ones(3))
    assert metrics["updates_rejected"] == 1


def test_bad_updates_are_logged_with_their_reason(caplog):
    results = results_of(GOOD[0], BAD[0])
    caplog.set_level("WARNING", logger="flwr")
    started(FedAvg()).aggregate_fit(3, results, [])
    assert "Round 3: left out client 1: array 0 has NaN or infinite values" in caplog.text


def test_failures_are_accepted_only_when_asked():
    results, failures = results_of(*GOOD), [RuntimeError("lost")]
    parameters, metrics = started(FedAvg(accept_failures=False)).aggregate_fit(1, results, failures)
    assert parameters is None
    assert metrics["failures"] == 1
    parameters, metrics = started(FedAvg(accept_failures=True)).aggregate_fit(1, results, failures)
    assert parameters is not None
    assert metrics["failures"] == 1


def test_fit_metrics_are_averaged_over_the_used_updates_by_default():
    results = results_of(
        fit_res(update(0, 0, 0, 0), 1, loss=1.0, epochs=1, client="a", dp=True),
        fit_res(update(0, 0, 0, 0), 3, loss=3.0, epochs=3, client="b", dp=False),
        fit_res(update(np.inf, 0, 0, 0), 100, loss=1e9, epochs=9, client="c", dp=True),
    )
    _, metrics = started(FedAvg()).aggregate_fit(1, results, [])
    assert metrics == {
        "loss": 2.5,
        "epochs": 2.5,
        "updates_used": 2,
        "updates_rejected": 1,
        "failures": 0,
    }


def test_user_metrics_aggregation_replaces_the_default():
    seen = []

    def count(metrics):
        seen.append(metrics)
        return {"clients": len(metrics)}

    strategy = started(FedMedian(fit_metrics_aggregation_fn=count))
    _, metrics = strategy.aggregate_fit(1, results_of(GOOD[0], BAD[0], GOOD[1]), [])
    assert seen == [[(1, {}), (1, {})]]
    assert metrics["clients"] == 2 and metrics["updates_used"] == 2


def test_weighted_metrics_mean_by_hand():
    metrics = [(10, {"acc": 0.5, "n": 2, "name": "x"}), (30, {"acc": 0.9, "flag": True})]
    assert weighted_metrics_mean(metrics) == pytest.approx({"acc": 0.8, "n": 2.0})
    assert weighted_metrics_mean([(0, {"acc": 0.5})]) == {}


def client_manager(num_clients=3):
    manager = SimpleClientManager()
    for i in range(num_clients):
        manager.register(client(str(i)))
    return manager


def test_fedprox_sends_proximal_mu_with_the_users_config():
    strategy = FedProx(proximal_mu=0.25, on_fit_config_fn=lambda rnd: {"epochs": rnd})
    instructions = strategy.configure_fit(4, ndarrays_to_parameters(GLOBAL), client_manager())
    assert len(instructions) == 3
    for _, ins in instructions:
        assert ins.config == {"epochs": 4, "proximal_mu": 0.25}


@pytest.mark.parametrize("mu", [-0.1, float("nan")])
def test_fedprox_rejects_a_negative_mu(mu):
    with pytest.raises(ValueError, match="proximal_mu"):
        FedProx(proximal_mu=mu)


def test_sampling_and_evaluation_come_from_flower():
    strategy = FedMedian(fraction_fit=0.5, min_fit_clients=1, min_available_clients=1)
    assert len(strategy.configure_fit(1, ndarrays_to_parameters(GLOBAL), client_manager(4))) == 2
    strategy = FedAvg(evaluate_fn=lambda rnd, arrays, config: (float(arrays[0].sum()), {}))
    assert strategy.evaluate(1, ndarrays_to_parameters(update(1, 2, 0, 0)))[0] == 3.0


def test_each_strategy_is_named_by_its_class():
    names = [repr(s) for s in (FedAvg(), FedWeightedAvg(), FedMedian(), FedProx(proximal_mu=0))]
    assert names == ["FedAvg", "FedWeightedAvg", "FedMedian", "FedProx"]


# Flower parity on random updates of several layer shapes and dtypes.
SHAPES = [((3, 3, 1, 4), np.float32), ((4,), np.float32), ((7, 5), np.float64), ((), np.float64)]


def random_results(num_clients, seed):
    rng = np.random.default_rng(seed)
    return results_of(
        *[
            fit_res(
                [rng.standard_normal(shape).astype(dtype) for shape, dtype in SHAPES],
                int(rng.integers(1, 1000)),
            )
            for _ in range(num_clients)
        ]
    )


def assert_same_model(ours, theirs, rtol):
    """Equal to `rtol` relative to the size of the values: sums of float32 terms rounded
    in another order differ by a few ulps of the terms, whatever the size of the sum."""
    for got, want in zip(parameters_to_ndarrays(ours), parameters_to_ndarrays(theirs), strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


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
    results = random_results(num_clients, seed=num_clients)
    reference = parameters_to_ndarrays(results[0][1].parameters)
    ours_params, _ = started(ours, reference).aggregate_fit(1, results, [])
    # Flower's in-place FedAvg writes into its inputs, so it gets its own copy.
    flowers_params, _ = flowers.aggregate_fit(1, random_results(num_clients, num_clients), [])
    assert_same_model(ours_params, flowers_params, rtol)


@pytest.mark.parametrize("num_clients", [1, 4, 7])
def test_fedavg_is_the_unweighted_mean(num_clients):
    results = random_results(num_clients, seed=num_clients)
    updates = [parameters_to_ndarrays(res.parameters) for _, res in results]
    parameters, _ = started(FedAvg(), updates[0]).aggregate_fit(1, results, [])
    for got, layer in zip(
        parameters_to_ndarrays(parameters), zip(*updates, strict=True), strict=True
    ):
        want = np.mean(np.stack(layer), axis=0)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


BAD_KINDS = {
    "too few arrays": [np.array([9, 9], np.float32)],
    "too many arrays": [*update(9, 9, 9, 9), np.zeros(1, np.float32)],
    "wrong shape": [np.zeros(3, np.float32), np.zeros((1, 2), np.float32)],
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
def test_each_kind_of_bad_update_never_reaches_the_model(make, kind):
    """The aggregate with one bad update equals the aggregate without it."""
    clean, _ = started(make()).aggregate_fit(1, results_of(*GOOD), [])
    bad = fit_res(BAD_KINDS[kind], 1000)
    mixed, metrics = started(make()).aggregate_fit(1, results_of(GOOD[0], bad, *GOOD[1:]), [])
    for got, want in zip(parameters_to_ndarrays(mixed), parameters_to_ndarrays(clean), strict=True):
        np.testing.assert_array_equal(got, want)
    assert metrics["updates_rejected"] == 1 and metrics["updates_used"] == 3


@pytest.mark.parametrize(
    "make",
    [FedAvg, FedWeightedAvg, FedMedian, lambda: FedProx(proximal_mu=0.1)],
    ids=["FedAvg", "FedWeightedAvg", "FedMedian", "FedProx"],
)
def test_the_model_does_not_depend_on_the_order_of_the_results(make):
    """Updates are read one at a time in an order given by their bytes, not by arrival."""
    results = random_results(6, seed=3) + results_of(*BAD)
    reference = parameters_to_ndarrays(results[0][1].parameters)
    models = set()
    for seed in range(4):
        shuffled = random.Random(seed).sample(results, len(results))
        parameters, metrics = started(make(), reference).aggregate_fit(1, shuffled, [])
        assert metrics["updates_used"] == 6 and metrics["updates_rejected"] == 2
        models.add(tuple(parameters.tensors))
    assert len(models) == 1
