"""Checkpoints: after every round, what a resumed run needs to finish as if never stopped.

One ``.npz`` holds the global weights and a JSON state (round, Flower's History so
far, the clients' curves). It is written to a temporary file and renamed, so a kill
at any moment leaves either the previous checkpoint or the new one, never half of
one. No other random state is needed: every draw in a run derives from the seed,
the round and the client (see ``task.fit_seed``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.server import History

FILENAME = "checkpoint.npz"
_HISTORY_FIELDS = (
    "losses_distributed",
    "losses_centralized",
    "metrics_distributed_fit",
    "metrics_distributed",
    "metrics_centralized",
)


@dataclass
class Checkpoint:
    """The state after ``round`` complete rounds."""

    round: int
    weights: list[np.ndarray]
    history: History
    curves: dict[int, list[dict[str, Any]]]


def save(out: Path, checkpoint: Checkpoint) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    state = {
        "round": checkpoint.round,
        "history": {name: getattr(checkpoint.history, name) for name in _HISTORY_FIELDS},
        "curves": checkpoint.curves,
    }
    arrays = {f"w{i}": w for i, w in enumerate(checkpoint.weights)}
    with tempfile.NamedTemporaryFile(dir=out, suffix=".tmp", delete=False) as tmp:
        np.savez(tmp, state=np.array(json.dumps(state)), **arrays)
    os.replace(tmp.name, out / FILENAME)


def load(out: Path) -> Checkpoint | None:
    """The last checkpoint in ``out``, or None when the run never finished a round."""
    path = out / FILENAME
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as npz:
        state = json.loads(str(npz["state"]))
        weights = [npz[f"w{i}"] for i in range(len(npz.files) - 1)]
    return Checkpoint(
        round=state["round"],
        weights=weights,
        history=_history(state["history"]),
        curves={int(pid): curves for pid, curves in state["curves"].items()},
    )


def _history(saved: dict[str, Any]) -> History:
    """Flower's History back from JSON (where its tuples became lists)."""
    history = History()
    for name in _HISTORY_FIELDS:
        value = saved[name]
        if isinstance(value, dict):
            value = {k: [tuple(item) for item in series] for k, series in value.items()}
        else:
            value = [tuple(item) for item in value]
        setattr(history, name, value)
    return history
