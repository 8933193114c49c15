"""The ClientApp: a NumPyClient wrapping the Keras model on one client's shard.

One ClientApp answers both Flower APIs: legacy messages (sent by a
``flwr.server.strategy`` server) go to the NumPyClient, Message-API ones (sent by
``flwr.serverapp.strategy``) to thin wrappers around the same ``fit``/``evaluate``.
"""

from __future__ import annotations

import json

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.client import ClientApp, NumPyClient

from fl_sim import federation
from fl_sim.config import RunConfig
from fl_sim.history import TEXT_KEYS, TEXTS
from fl_sim.metrics import classification_metrics, report
from fl_sim.scenarios import attacked_update, poisoned, straggler_epochs
from fl_sim.task import (
    SimulatedFailure,
    client_data,
    fails,
    fit_seed,
    local_model,
    predict,
    train,
)
from fl_sim.training import set_weights


class FlowerClient(NumPyClient):
    """One simulated member of the federation: trains and validates locally."""

    def __init__(self, cfg: RunConfig, partition_id: int) -> None:
        self.cfg = cfg
        self.partition_id = partition_id
        self.data = poisoned(cfg, partition_id, client_data(cfg, partition_id))
        self.model = local_model(cfg.model, cfg.seed)

    def get_parameters(self, config):
        return self.model.get_weights()

    def get_properties(self, config):
        """The partition id, which the server samples by (node ids change every run)."""
        return {"partition_id": self.partition_id}

    def fit(self, parameters, config):
        """Train from the global weights with the round's hyper-parameters.

        Besides the weights, returns the per-epoch curves (as JSON, since Flower
        metrics are numbers) so the server can draw each client's learning curve.
        """
        server_round = int(config["server_round"])
        if fails(self.cfg.seed, server_round, self.partition_id, self.cfg.fail_rate):
            raise SimulatedFailure(f"client {self.partition_id} crashed in round {server_round}")
        set_weights(self.model, parameters)
        epochs = straggler_epochs(
            self.cfg, server_round, self.partition_id, int(config["local_epochs"])
        )
        history = train(
            self.model,
            self.data,
            epochs=epochs,
            batch_size=int(config["batch_size"]),
            learning_rate=float(config["learning_rate"]),
            proximal_mu=float(config.get("proximal_mu", 0.0)),
            seed=fit_seed(self.cfg.seed, server_round, self.partition_id),
        )
        metrics = {
            "partition_id": self.partition_id,
            "train_loss": history["loss"][-1],
            "train_accuracy": history["accuracy"][-1],
            "curve": json.dumps({"round": server_round, **history}),
        }
        weights = attacked_update(
            self.cfg, self.partition_id, server_round, parameters, self.model.get_weights()
        )
        return weights, len(self.data.y_train), metrics

    def evaluate(self, parameters, config):
        """Validate the global model locally; the final round adds sklearn's report."""
        set_weights(self.model, parameters)
        probs = predict(self.model, self.data.x_val)
        scores = classification_metrics(self.data.y_val, probs)
        metrics = {"partition_id": self.partition_id, **scores}
        if config.get("final"):
            metrics["classification_report"] = report(self.data.y_val, probs)
        return scores["loss"], len(self.data.y_val), metrics


def _message_reply(msg: Message, arrays: list | None, n: int, metrics: dict) -> Message:
    """Numbers go in the MetricRecord Flower aggregates, texts in a ConfigRecord beside it."""
    content = RecordDict()
    if arrays is not None:
        content["arrays"] = ArrayRecord(arrays)
    numbers = {k: v for k, v in metrics.items() if k not in TEXT_KEYS}
    content["metrics"] = MetricRecord({**numbers, "num-examples": n})
    content[TEXTS] = ConfigRecord({k: v for k, v in metrics.items() if k in TEXT_KEYS})
    return Message(content, reply_to=msg)


def _message_config(msg: Message) -> dict:
    """The Message API's config, spelled as the NumPyClient reads it."""
    config = dict(msg.content["config"])
    config["server_round"] = config.get("server-round", 0)
    config["proximal_mu"] = config.get("proximal-mu", 0.0)
    return config


class _BothApis(ClientApp):
    """A ClientApp that hands Message-API messages to its own handlers, others to ``legacy``.

    Message-API messages carry an ``arrays`` record; legacy ones (fit, evaluate,
    get_properties, get_parameters) carry Flower's compat records instead.
    """

    def __init__(self, legacy: ClientApp) -> None:
        super().__init__()
        self.legacy = legacy

    def __call__(self, message: Message, context: Context) -> Message:
        if "arrays" in message.content.array_records:
            return super().__call__(message, context)
        return self.legacy(message, context)


def make_client_app(cfg: RunConfig | None = None) -> ClientApp:
    """A ClientApp for ``cfg``, or reading the config from ``flwr run``'s run_config."""

    def client_for(context: Context) -> FlowerClient:
        run_cfg = cfg or RunConfig.from_run_config(context.run_config)
        return FlowerClient(run_cfg, federation.partition_id(context.node_config, run_cfg))

    app = _BothApis(legacy=ClientApp(client_fn=lambda context: client_for(context).to_client()))

    @app.train()
    def train_message(msg: Message, context: Context) -> Message:
        weights = msg.content["arrays"].to_numpy_ndarrays()
        new, n, metrics = client_for(context).fit(weights, _message_config(msg))
        return _message_reply(msg, new, n, metrics)

    @app.evaluate()
    def evaluate_message(msg: Message, context: Context) -> Message:
        client, config = client_for(context), _message_config(msg)
        config["final"] = config["server_round"] == client.cfg.rounds
        _, n, metrics = client.evaluate(msg.content["arrays"].to_numpy_ndarrays(), config)
        return _message_reply(msg, None, n, metrics)

    return app


app = make_client_app()
