"""The comparison's grid: named scenarios, the presets, and the runs they expand into.

A scenario is a name that changes a few RunConfig fields (``dirichlet-0.1``,
``sign-flip-2``); a cell is one scenario with one seed; a run is one strategy (or the
centralized baseline) in one cell. Every run of a cell shares the cell's config except
``strategy``, hence the same partition, initial weights and malicious clients.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fl_sim.config import ATTACKS, RUN_CONTROL, ConfigError, RunConfig

CENTRALIZED = "centralized"
QUANTITY_SKEW = 20.0
STRAGGLERS = 0.6
STRAGGLER_EPOCHS = 3
# In priority order: the grid runs seed by seed, scenario by scenario, so a comparison
# cut short has the scenarios where the strategies differ most, for every seed done.
FULL_SCENARIOS = (
    "iid", "sign-flip-2", "gaussian-2", "label-flip-2", "quantity-skew", "dirichlet-0.1",
    "stragglers", "shards", "dirichlet-0.5", "sign-flip-1", "gaussian-1", "label-flip-1",
)  # fmt: skip
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"scenarios": ("iid", "sign-flip-1"), "seeds": (0,), "rounds": 2},
    "full": {"scenarios": FULL_SCENARIOS, "seeds": (0, 1, 2), "rounds": 5},
}
_ATTACK = re.compile(rf"^({'|'.join(ATTACKS)})-(\d+)$")
_DIRICHLET = re.compile(r"^dirichlet-(\d+(?:\.\d+)?)$")


def scenario_changes(name: str, base: RunConfig) -> dict[str, Any]:
    """The RunConfig fields a scenario name sets; ConfigError for an unknown name."""
    if name in ("iid", "shards"):
        return {"partition": name}
    if name == "quantity-skew":
        return {"partition": "iid", "quantity_skew": QUANTITY_SKEW}
    if name == "stragglers":
        epochs = max(base.local_epochs, STRAGGLER_EPOCHS)
        return {"partition": "dirichlet", "stragglers": STRAGGLERS, "local_epochs": epochs}
    if match := _DIRICHLET.match(name):
        return {"partition": "dirichlet", "alpha": float(match[1])}
    if match := _ATTACK.match(name):
        return {"partition": "iid", "attack": match[1], "malicious": int(match[2])}
    raise ConfigError(
        f"unknown scenario '{name}' (iid, shards, dirichlet-<alpha>, quantity-skew, "
        f"stragglers, or <attack>-<number of malicious clients> with attack in "
        f"{', '.join(ATTACKS)})"
    )


@dataclass(frozen=True)
class Run:
    """One strategy (or the centralized baseline) on one scenario and seed."""

    scenario: str
    seed: int
    strategy: str
    cfg: RunConfig

    @property
    def path(self) -> Path:
        return Path(self.cfg.output)

    def is_done(self) -> bool:
        """Finished with this config (a changed grid in the same folder is recomputed).

        Fields added to RunConfig later take their defaults in older results, and
        the fields that only say how or where to run are not compared.
        """
        result = self.path / "result.json"
        if not result.exists():
            return False
        saved = {**RunConfig().to_dict(), **json.loads(result.read_text())["config"]}
        wanted = self.cfg.to_dict()
        return all(saved[k] == v for k, v in wanted.items() if k not in RUN_CONTROL)


@dataclass(frozen=True)
class Grid:
    """Every run the comparison needs, in the order it computes them."""

    scenarios: tuple[str, ...]
    seeds: tuple[int, ...]
    strategies: tuple[str, ...]
    base: RunConfig
    out: Path

    def cell(self, scenario: str, seed: int) -> RunConfig:
        """The config all runs of a cell share (strategy aside)."""
        changes = scenario_changes(scenario, self.base)
        # A recomputed run replaces what an interrupted attempt left in its folder.
        return self.base.replace(seed=seed, api="message", overwrite=True, **changes)

    def runs(self) -> list[Run]:
        """Seed-major, so an interrupted grid has covered every scenario evenly."""
        runs = []
        for seed in self.seeds:
            for scenario in self.scenarios:
                cfg = self.cell(scenario, seed)
                runs.append(self._centralized(scenario, cfg))
                for strategy in self.strategies:
                    path = self.out / "runs" / scenario / f"seed-{seed}" / strategy
                    runs.append(
                        Run(
                            scenario,
                            seed,
                            strategy,
                            cfg.replace(strategy=strategy, output=str(path)),
                        )
                    )
        return runs

    def _centralized(self, scenario: str, cfg: RunConfig) -> Run:
        """The baseline depends only on the data, so scenarios with one split share it."""
        data = cfg.partition + (f"-{cfg.dirichlet_alpha:g}" if cfg.partition == "dirichlet" else "")
        if cfg.quantity_skew > 1:
            data += f"-skew{cfg.quantity_skew:g}"
        path = self.out / "runs" / CENTRALIZED / f"{data}-e{cfg.local_epochs}" / f"seed-{cfg.seed}"
        default = RunConfig()
        clean = cfg.replace(
            malicious=default.malicious,
            attack=default.attack,
            stragglers=default.stragglers,
            output=str(path),
        )
        return Run(scenario, cfg.seed, CENTRALIZED, clean)


def describe(cfg: RunConfig) -> str:
    """One line saying what a cell simulates."""
    data = {"iid": "IID", "shards": "2 label shards per client"}.get(cfg.partition)
    if cfg.partition == "dirichlet":
        data = f"Dirichlet label skew, alpha {cfg.dirichlet_alpha:g}"
    if cfg.quantity_skew > 1:
        data += (
            f" labels, part sizes in geometric progression, largest/smallest {cfg.quantity_skew:g}"
        )
    text = f"{data}; {cfg.num_clients} clients, {cfg.local_epochs} local epoch(s) per round"
    if cfg.malicious:
        text += f"; {cfg.malicious} malicious client(s) doing {cfg.attack}"
        if cfg.attack != "label-flip":
            text += f" (scale {cfg.attack_scale:g})"
    if cfg.stragglers:
        text += (
            f"; each round {cfg.stragglers:.0%} of the clients straggle, running "
            f"1..{cfg.local_epochs - 1} epochs"
        )
    return text
