"""The ClientApp: a NumPyClient wrapping the Keras model on one client's shard."""

from __future__ import annotations

import json

from flwr.app import Context
from flwr.client import Client, ClientApp, NumPyClient

from fl_sim.config import RunConfig
from fl_sim.federation import partition_id
from fl_sim.metrics import classification_metrics, report
from fl_sim.task import client_data, fit_seed, local_model, predict, train


class FlowerClient(NumPyClient):
    """One simulated member of the federation: trains and validates locally."""

    def __init__(self, cfg: RunConfig, partition_id: int) -> None:
        self.cfg = cfg
        self.partition_id = partition_id
        self.data = client_data(cfg, partition_id)
        self.model = local_model(cfg.model, cfg.seed)

    def get_parameters(self, config):
        return self.model.get_weights()

    def fit(self, parameters, config):
        """Train from the global weights with the round's hyper-parameters.

        Besides the weights, returns the per-epoch curves (as JSON, since Flower
        metrics are scalars) so the server can draw each client's learning curve.
        """
        self.model.set_weights(parameters)
        server_round = int(config["server_round"])
        history = train(
            self.model,
            self.data,
            epochs=int(config["local_epochs"]),
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
        return self.model.get_weights(), len(self.data.y_train), metrics

    def evaluate(self, parameters, config):
        """Validate the global model on the local split; the final round adds sklearn's report."""
        self.model.set_weights(parameters)
        probs = predict(self.model, self.data.x_val)
        scores = classification_metrics(self.data.y_val, probs)
        metrics = {"partition_id": self.partition_id, **scores}
        if config.get("final"):
            metrics["classification_report"] = report(self.data.y_val, probs)
        return scores["loss"], len(self.data.y_val), metrics


def make_client_app(cfg: RunConfig | None = None) -> ClientApp:
    """A ClientApp for ``cfg``, or reading the config from ``flwr run``'s run_config."""

    def client_fn(context: Context) -> Client:
        run_cfg = cfg or RunConfig.from_run_config(context.run_config)
        return FlowerClient(run_cfg, partition_id(context.node_config, run_cfg)).to_client()

    return ClientApp(client_fn=client_fn)


app = make_client_app()
