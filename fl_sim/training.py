"""Local training and inference with one graph call per epoch or per chunk.

Keras' ``fit``, ``evaluate`` and ``predict`` build a tf.data pipeline, an iterator
and callbacks on every call: 0.1-0.25 s each, the whole cost of a 100-image client
and more than a federated round of 500 such clients can afford. Here an epoch is
Keras' own ``train_step`` looped inside one ``tf.function`` over batches indexed
from arrays already in memory, traced once per process whatever the client's size;
validation is ``test_step`` over the whole split at once. Loading a round's weights
and zeroing the optimizer are one graph call each too: Keras assigns variables one
eager op at a time, some 70 of them per fit, which cost a 100-image client more than
its training.
"""

from __future__ import annotations

import weakref
from collections import defaultdict

import keras
import numpy as np
import tensorflow as tf

PREDICT_BATCH = 1024
_IMAGES = tf.TensorSpec([None, 28, 28], tf.float32)
_LABELS = tf.TensorSpec([None], tf.int64)
_ORDER = tf.TensorSpec([None], tf.int32)
_SCALAR = tf.TensorSpec([], tf.int32)


class EpochRunner:
    """Compiled training and validation epochs for one compiled Keras model."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        # Variables must exist before tracing: the optimizer's slots are built now.
        model.optimizer.build(model.trainable_variables)
        self._train = {}  # one trace per setting of ProximalModel.proximal
        self._test = tf.function(self._test_all, input_signature=[_IMAGES, _LABELS])
        optimizer = model.optimizer
        self._slots = [v for v in optimizer.variables if v is not optimizer.learning_rate]
        self._generators = [
            layer.seed_generator for layer in model.layers if hasattr(layer, "seed_generator")
        ]
        self._reset = tf.function(self._zero_slots, input_signature=[tf.TensorSpec([], tf.float32)])
        self._seed = tf.function(self._seed_all, input_signature=[tf.TensorSpec([2], tf.int64)])

    def _zero_slots(self, learning_rate):
        self.model.optimizer.learning_rate.assign(learning_rate)
        for var in self._slots:
            var.assign(tf.zeros(var.shape, var.dtype))

    def _seed_all(self, state):
        for generator in self._generators:
            generator.state.assign(tf.cast(state, generator.state.dtype))

    def reset_optimizer(self, learning_rate: float) -> None:
        """Fresh Adam state (step 0, zero moments) for a new local fit; no rebuild, no retrace."""
        self._reset(np.float32(learning_rate))

    def reseed(self, seed: int) -> None:
        """Make the next epochs' dropout depend on ``seed`` alone, not on history.

        Only the layers' own generators are reset (shuffling takes its own seeded rng):
        ``keras.utils.set_random_seed`` would also clear TensorFlow's caches, making the
        next compiled epoch re-optimise its graph, about a third of a second per fit.
        """
        self._seed(np.array([seed, 0], np.int64))

    def _train_step_function(self):
        key = getattr(self.model, "proximal", False)
        if key not in self._train:
            signature = [_IMAGES, _LABELS, _ORDER, _SCALAR]
            self._train[key] = tf.function(self._train_epoch, input_signature=signature)
        return self._train[key]

    def _train_epoch(self, x, y, order, batch_size):
        n = tf.shape(order)[0]
        for step in tf.range((n + batch_size - 1) // batch_size):
            batch = order[step * batch_size : tf.minimum((step + 1) * batch_size, n)]
            self.model.train_step((tf.gather(x, batch), tf.gather(y, batch)))
        return self.model.get_metrics_result()

    def _test_all(self, x, y):
        self.model.test_step((x, y))
        return self.model.get_metrics_result()

    def _scores(self, run, *args) -> dict[str, float]:
        for metric in self.model.metrics:
            metric.reset_state()
        return {name: float(value) for name, value in run(*args).items()}

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int,
        batch_size: int,
        rng: np.random.Generator | None,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, list[float]]:
        """Mini-batch epochs, shuffled by ``rng`` (None: in order, as Keras' shuffle=False).

        Returns the per-epoch scores named as in Keras' History.
        """
        history = defaultdict(list)
        train = self._train_step_function()
        for _ in range(epochs):
            order = np.arange(len(y)) if rng is None else rng.permutation(len(y))
            order = order.astype(np.int32)
            for name, value in self._scores(train, x, y, order, batch_size).items():
                history[name].append(value)
            if validation is not None:
                for name, value in self._scores(self._test, *validation).items():
                    history[f"val_{name}"].append(value)
        return dict(history)


_RUNNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOADERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def epoch_runner(model: keras.Model) -> EpochRunner:
    """The model's runner, made (and traced) once per model."""
    if model not in _RUNNERS:
        _RUNNERS[model] = EpochRunner(model)
    return _RUNNERS[model]


def set_weights(model: keras.Model, weights: list[np.ndarray]) -> None:
    """``model.set_weights`` in one graph call, traced once per model.

    The signature holds each weight's shape and dtype, so a wrong array is refused
    as Keras would refuse it.
    """
    if model not in _LOADERS:
        variables = list(model.weights)
        specs = [tf.TensorSpec(v.shape, v.dtype) for v in variables]

        def assign(values):
            for var, value in zip(variables, values, strict=True):
                var.assign(value)

        _LOADERS[model] = tf.function(assign, input_signature=[specs])
    if len(weights) != len(model.weights):
        raise ValueError(f"expected {len(model.weights)} weight arrays, got {len(weights)}")
    _LOADERS[model](list(weights))


def predict_probabilities(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Inference-mode outputs, chunk by chunk through the compiled predict step."""
    chunks = [
        np.asarray(model.predict_on_batch(x[i : i + PREDICT_BATCH]))
        for i in range(0, len(x), PREDICT_BATCH)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, 10), np.float32)
