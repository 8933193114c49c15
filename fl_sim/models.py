"""The two Keras models and the FedProx local objective.

Both models take (28, 28) float images and end in a 10-way softmax, trained
with Adam and sparse categorical cross-entropy as in the original study.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import keras
from keras import layers, ops


class ProximalModel(keras.Model):
    """A Keras model whose training loss adds FedProx's (mu/2)·‖w − w_global‖².

    ``mu`` and the global weights are plain variables kept outside Keras'
    tracking (they are not model weights, so ``get_weights`` is unchanged), and
    assigning them between rounds does not retrace the compiled train step. With
    mu 0 the term is left out of the step altogether (it would cost the small MLP
    a third of its step time for nothing): :attr:`proximal` says which step a fit
    needs, and ``fl_sim.training`` keeps one trace for each.
    """

    def anchor(self, mu: float) -> None:
        """Take the current weights as w_global and set mu for the next fit.

        With mu 0 the step leaves the term out, so nothing is copied.
        """
        if not hasattr(self, "_prox"):
            object.__setattr__(self, "_prox", _ProximalState(self.trainable_weights))
        self._prox.on = mu > 0
        if not self._prox.on:
            return
        self._prox.mu.assign(mu)
        for anchor, weight in zip(self._prox.anchor, self.trainable_weights, strict=True):
            anchor.assign(weight)

    @property
    def proximal(self) -> bool:
        """Whether the training step adds the proximal term (mu > 0)."""
        prox = getattr(self, "_prox", None)
        return prox is not None and prox.on

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        if not training or not self.proximal:
            return loss
        squared = [
            ops.sum(ops.square(w - a))
            for w, a in zip(self.trainable_weights, self._prox.anchor, strict=True)
        ]
        return loss + self._prox.mu / 2.0 * ops.sum(ops.stack(squared))


class _ProximalState:
    """FedProx's mu and w_global, as non-trainable variables."""

    def __init__(self, weights: list) -> None:
        self.on = False
        self.mu = keras.Variable(0.0, trainable=False, name="proximal_mu")
        self.anchor = [
            keras.Variable(ops.zeros(w.shape), trainable=False, name="proximal_anchor")
            for w in weights
        ]


def kernel_initializers(seed: int) -> Iterator[keras.initializers.GlorotUniform]:
    """Keras' default kernel initializer, one per layer, with seeds from ``seed`` alone.

    Left to itself, Keras draws each layer's seed from Python's global ``random``,
    which Flower's heartbeat thread also draws from: a model built while a
    simulation runs could then start from other weights than its seed gives.
    """
    rng = random.Random(seed)
    while True:
        yield keras.initializers.GlorotUniform(seed=rng.randrange(2**31))


def mlp(inputs: keras.KerasTensor, kernels: Iterator) -> keras.KerasTensor:
    """The original study's TheModel: 236,682 parameters with BatchNorm statistics."""
    x = layers.Reshape((784,))(inputs)
    for units in (256, 128):
        x = layers.Dense(units, activation="relu", kernel_initializer=next(kernels))(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(0.3)(x)
    return layers.Dense(10, activation="softmax", kernel_initializer=next(kernels))(x)


def cnn(inputs: keras.KerasTensor, kernels: Iterator) -> keras.KerasTensor:
    """McMahan et al. 2017's MNIST CNN: 1,663,370 parameters."""
    x = layers.Reshape((28, 28, 1))(inputs)
    for filters in (32, 64):
        x = layers.Conv2D(
            filters, 5, padding="same", activation="relu", kernel_initializer=next(kernels)
        )(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu", kernel_initializer=next(kernels))(x)
    return layers.Dense(10, activation="softmax", kernel_initializer=next(kernels))(x)


ARCHITECTURES = {"mlp": mlp, "cnn": cnn}


STEPS_PER_EXECUTION = 16


def build_model(name: str, seed: int, learning_rate: float = 1e-3, proximal: bool = False):
    """A compiled model whose initial weights depend on ``seed`` alone.

    ``proximal=True`` gives the clients' :class:`ProximalModel`; the server keeps
    a plain ``keras.Model`` so the saved ``model.keras`` loads anywhere. Running
    several steps per graph call halves the small MLP's epoch time on a CPU.
    Dropout's generators are reseeded before every fit (``fl_sim.training``).
    """
    inputs = keras.Input(shape=(28, 28), name="image")
    outputs = ARCHITECTURES[name](inputs, kernel_initializers(seed))
    cls = ProximalModel if proximal else keras.Model
    model = cls(inputs=inputs, outputs=outputs, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model
