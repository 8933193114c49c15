"""The two models, the shared initial weights, and FedProx's proximal term."""

from __future__ import annotations

import numpy as np
import pytest

from fl_sim.data import load_mnist
from fl_sim.models import build_model
from fl_sim.task import ClientData, train

DATA = load_mnist()
SLICE = ClientData(
    DATA.x_train[:1024], DATA.y_train[:1024], DATA.x_train[1024:1124], DATA.y_train[1024:1124]
)


@pytest.mark.parametrize("name, params", [("mlp", 236_682), ("cnn", 1_663_370)])
def test_parameter_counts(name, params):
    model = build_model(name, seed=0)
    assert sum(w.size for w in model.get_weights()) == params


def test_proximal_model_has_the_same_weights_as_the_plain_one():
    plain, prox = build_model("mlp", 5), build_model("mlp", 5, proximal=True)
    prox.anchor(0.1)
    assert len(prox.get_weights()) == len(plain.get_weights()) == 14
    assert all(
        np.array_equal(a, b) for a, b in zip(plain.get_weights(), prox.get_weights(), strict=True)
    )


def test_seed_fixes_the_initial_model():
    a, b, c = (build_model("mlp", s).get_weights() for s in (7, 7, 8))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def _train(mu: float, proximal: bool = True) -> tuple[list, list]:
    model = build_model("mlp", 3, proximal=proximal)
    before = [w.numpy().copy() for w in model.trainable_weights]
    if proximal:
        train(model, SLICE, epochs=1, batch_size=32, learning_rate=1e-3, proximal_mu=mu, seed=11)
    else:
        from fl_sim.task import reseed, reset_optimizer

        reset_optimizer(model, 1e-3)
        reseed(model, 11)
        model.fit(
            SLICE.x_train,
            SLICE.y_train,
            batch_size=32,
            epochs=1,
            shuffle=True,
            validation_data=(SLICE.x_val, SLICE.y_val),
            verbose=0,
        )
    return before, [w.numpy() for w in model.trainable_weights]


def test_mu_zero_trains_exactly_like_plain_keras():
    _, with_prox = _train(0.0)
    _, plain = _train(0.0, proximal=False)
    for a, b in zip(with_prox, plain, strict=True):
        np.testing.assert_array_equal(a, b)


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
