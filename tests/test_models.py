"""The two models, the shared initial weights, and FedProx's proximal term."""

from __future__ import annotations

import random
import sys
import threading

import numpy as np
import pytest

from fl_sim.data import load_mnist
from fl_sim.models import build_model
from fl_sim.task import ClientData, train
from fl_sim.training import epoch_runner, set_weights

DATA = load_mnist()
SLICE = ClientData(
    DATA.x_train[:1024], DATA.y_train[:1024], DATA.x_train[1024:1124], DATA.y_train[1024:1124]
)


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name, params", [("mlp", 236_682), ("cnn", 1_663_370)])
def test_parameter_counts(name, params):
    model = build_model(name, seed=0)
    assert sum(w.size for w in model.get_weights()) == params


def test_proximal_model_has_the_same_weights_as_the_plain_one():
    plain, prox = build_model("mlp", 5), build_model("mlp", 5, proximal=True)
    prox.anchor(0.1)
    assert len(prox.get_weights()) == len(plain.get_weights()) == 14
    assert _same(plain.get_weights(), prox.get_weights())


def test_seed_fixes_the_initial_model():
    a, b, c = (build_model("mlp", s).get_weights() for s in (7, 7, 8))
    assert _same(a, b)
    assert not _same(a, c)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_initial_model_ignores_other_threads_drawing_from_random(name):
    """Flower's heartbeat thread draws from Python's ``random`` while the server builds."""
    quiet = build_model(name, 7).get_weights()
    stop = threading.Event()

    def draw():
        while not stop.is_set():
            random.random()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    drawer = threading.Thread(target=draw)
    drawer.start()
    try:
        busy = build_model(name, 7).get_weights()
    finally:
        stop.set()
        drawer.join()
        sys.setswitchinterval(interval)
    assert _same(quiet, busy)


def _train(mu: float) -> tuple[list, list]:
    model = build_model("mlp", 3, proximal=True)
    before = [w.numpy().copy() for w in model.trainable_weights]
    train(model, SLICE, epochs=1, batch_size=32, learning_rate=1e-3, proximal_mu=mu, seed=11)
    return before, [w.numpy() for w in model.trainable_weights]


def _fit_in_order(model, keras_fit: bool) -> dict[str, list[float]]:
    epoch_runner(model).reset_optimizer(1e-3)
    epoch_runner(model).reseed(11)
    x, y = SLICE.x_train[:1000], SLICE.y_train[:1000]  # a last batch of 8
    kwargs = {"epochs": 2, "batch_size": 32, "validation_data": (SLICE.x_val, SLICE.y_val)}
    if keras_fit:
        return model.fit(x, y, shuffle=False, verbose=0, **kwargs).history
    validation = kwargs.pop("validation_data")
    return epoch_runner(model).fit(x, y, rng=None, validation=validation, **kwargs)


@pytest.mark.parametrize("proximal", [False, True])
def test_compiled_epochs_train_exactly_like_keras_fit(proximal):
    """Same batches in the same order: the same weights and curves as ``model.fit``.

    With ``proximal=True`` and mu 0 this also shows the proximal term changes nothing.
    """
    models = [build_model("mlp", 3, proximal=proximal) for _ in range(2)]
    if proximal:
        for model in models:
            model.anchor(0.0)
    ours, keras_fit = _fit_in_order(models[0], False), _fit_in_order(models[1], True)
    for a, b in zip(models[0].get_weights(), models[1].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert ours.keys() == keras_fit.keys() == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for key in ours:
        np.testing.assert_allclose(ours[key], keras_fit[key], rtol=1e-5)


def test_large_mu_keeps_weights_near_the_global_model():
    start, free = _train(0.0)
    _, held = _train(1e4)
    assert _drift(start, held) < 0.1 * _drift(start, free)


def _drift(before, after) -> float:
    return max(float(np.abs(a - b).max()) for a, b in zip(before, after, strict=True))


def test_local_fit_depends_on_its_seed_alone():
    model = build_model("mlp", 3, proximal=True)
    initial = model.get_weights()
    runs = []
    for _ in range(2):
        model.set_weights(initial)
        train(model, SLICE, epochs=1, batch_size=32, learning_rate=1e-3, proximal_mu=0.0, seed=9)
        runs.append(model.get_weights())
    for a, b in zip(*runs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_set_weights_in_one_graph_call_matches_keras():
    source, ours, theirs = (build_model("mlp", s, proximal=True) for s in (1, 2, 2))
    weights = source.get_weights()
    set_weights(ours, weights)
    theirs.set_weights(weights)
    for a, b, c in zip(weights, ours.get_weights(), theirs.get_weights(), strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_set_weights_refuses_wrong_arrays():
    model = build_model("mlp", 1)
    weights = model.get_weights()
    with pytest.raises(ValueError, match="expected 14 weight arrays, got 13"):
        set_weights(model, weights[:-1])
    with pytest.raises((TypeError, ValueError)):
        set_weights(model, [w.T if w.ndim == 2 else w for w in weights])


def test_reset_optimizer_zeroes_adam_and_sets_the_learning_rate():
    model = build_model("mlp", 3, proximal=True)
    train(model, SLICE, epochs=1, batch_size=32, learning_rate=1e-3, proximal_mu=0.0, seed=9)
    assert int(model.optimizer.iterations.numpy()) > 0
    epoch_runner(model).reset_optimizer(0.05)
    assert int(model.optimizer.iterations.numpy()) == 0
    assert np.isclose(float(model.optimizer.learning_rate.numpy()), 0.05)
    slots = [v for v in model.optimizer.variables if "momentum" in v.path or "velocity" in v.path]
    assert len(slots) == 2 * len(model.trainable_weights)
    assert all(not np.any(v.numpy()) for v in slots)
