"""Everything a run writes into its output folder: JSON, the model, reports and plots."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from fl_sim.config import RUN_CONTROL, ConfigError, RunConfig  # noqa: E402


def output_dir(cfg: RunConfig) -> Path:
    """The run's folder: ``--resume``, ``--output`` or ``runs/<time>-<strategy>/``."""
    if cfg.resume or cfg.output:
        return Path(cfg.resume or cfg.output)
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.strategy}"


def saved_config(folder: str | Path) -> dict[str, Any]:
    """The config.json of an earlier run, for ``--resume``."""
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"--resume '{folder}': cannot read {path.name} ({err})") from None


def claim_output(cfg: RunConfig) -> Path:
    """The run's folder, refusing to mix two different runs in one.

    Resuming needs the saved config to match in everything that decides the
    result; a non-empty folder is only reused with ``--resume`` or ``--overwrite``.
    """
    out = output_dir(cfg)
    if cfg.resume:
        saved = saved_config(out)
        for name, value in cfg.to_dict().items():
            if name not in RUN_CONTROL and saved.get(name) != value:
                raise ConfigError(
                    f"--resume '{out}': {name.replace('_', '-')}={value!r} differs from "
                    f"the saved run's {saved.get(name)!r}"
                )
    elif out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise ConfigError(
                f"output folder '{out}' is not empty: pass --resume {out} to continue it "
                "or --overwrite to replace it"
            )
        shutil.rmtree(out)
    return out


def write_json(path: Path, payload: Any) -> None:
    """Write atomically, so a crash never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(payload, tmp, indent=2)
    os.replace(tmp.name, path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")


def plot_global_curves(rounds: list[dict[str, Any]], path: Path, title: str) -> None:
    """Global test accuracy and loss per round."""
    tested = [r for r in rounds if "test" in r]
    x = [r["round"] for r in tested]
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    acc_ax.plot(x, [r["test"]["accuracy"] for r in tested], marker="o")
    acc_ax.set(xlabel="round", ylabel="test accuracy", title="Global model: accuracy")
    loss_ax.plot(x, [r["test"]["loss"] for r in tested], marker="o", color="tab:red")
    loss_ax.set(xlabel="round", ylabel="test loss", title="Global model: loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    _save(fig, path)


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str) -> None:
    """The test-set confusion matrix of the final global model."""
    fig, ax = plt.subplots(figsize=(7, 6))
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=range(10), ax=ax, colorbar=False)
    ax.set_title(title)
    _save(fig, path)


def plot_client_curves(curves: list[dict[str, Any]], path: Path, title: str) -> None:
    """A client's training and validation curves over all its local epochs.

    Dashed vertical lines mark where a new round (fresh global weights) began.
    """
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    epoch, starts = 0, []
    series: dict[str, list[tuple[int, float]]] = {}
    for curve in sorted(curves, key=lambda c: c["round"]):
        starts.append((epoch + 0.5, curve["round"]))
        for key in ("accuracy", "val_accuracy", "loss", "val_loss"):
            for i, value in enumerate(curve.get(key, [])):
                series.setdefault(key, []).append((epoch + i + 1, value))
        epoch += len(curve["loss"])
    for ax, metric in ((acc_ax, "accuracy"), (loss_ax, "loss")):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if key in series:
                xs, ys = zip(*series[key], strict=True)
                ax.plot(xs, ys, marker=".", label=label)
        for x, rnd in starts:
            ax.axvline(x, color="grey", linestyle="--", linewidth=0.7)
            ax.annotate(
                f"r{rnd}",
                (x, 1),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                ha="left",
                va="top",
                color="grey",
            )
        ax.set(xlabel="local epoch (all rounds)", ylabel=metric, title=metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
