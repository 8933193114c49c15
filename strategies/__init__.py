"""Federated aggregation strategies for Flower that leave unusable updates out.

`strategies.FedAvg` & co. speak Flower's legacy API (`flwr.server.strategy`);
`strategies.message` has the same four for the Message API (`flwr.serverapp.strategy`).
Both aggregate with the NumPy kernels in `strategies.kernels`, after `strategies.checks`.
"""

from . import checks, kernels, message
from .legacy import FedAvg, FedMedian, FedProx, FedWeightedAvg

__all__ = ["FedAvg", "FedMedian", "FedProx", "FedWeightedAvg", "checks", "kernels", "message"]
