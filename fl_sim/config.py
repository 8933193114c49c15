"""One validated configuration for every way of starting a run.

The CLI flags of ``python -m fl_sim.run`` and the ``[tool.flwr.app.config]`` keys of
``flwr run`` are two spellings of the same fields: ``--local-epochs`` and
``local-epochs`` both land in :attr:`RunConfig.local_epochs`. Validation lives here
once, so both entry points refuse the same bad values with the same message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STRATEGIES = ("fedavg", "fedweightedavg", "fedmedian", "fedprox")
PARTITIONS = ("iid", "dirichlet", "shards")
MODELS = ("mlp", "cnn")
APIS = ("legacy", "message")
ATTACKS = ("sign-flip", "gaussian", "label-flip")
DEFAULT_ALPHA = 0.5
# Fields that say how and where to run, not what: a resumed run may change them.
RUN_CONTROL = ("output", "resume", "overwrite", "client_cpus")


class ConfigError(ValueError):
    """A configuration value that cannot run; the message names the value."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's result (and where it is written)."""

    strategy: str = "fedavg"
    num_clients: int = 5
    rounds: int = 3
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 1e-3
    proximal_mu: float = 0.01
    fraction_fit: float = 1.0
    partition: str = "iid"
    alpha: float | None = None
    model: str = "mlp"
    seed: int = 42
    output: str = ""
    client_cpus: float = 2.0
    data: str = ""
    api: str = "legacy"
    fail_rate: float = 0.0
    resume: str = ""
    overwrite: bool = False
    malicious: int = 0
    attack: str = "sign-flip"
    attack_scale: float = 4.0
    stragglers: float = 0.0
    quantity_skew: float = 1.0

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def dirichlet_alpha(self) -> float:
        """The alpha a Dirichlet partition uses (the default when none was given)."""
        return DEFAULT_ALPHA if self.alpha is None else self.alpha

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``config.json``."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RunConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> RunConfig:
        """Build from Flower's ``context.run_config`` (keys spelled with dashes).

        Flower's TOML config cannot hold ``None``, so ``alpha = ""`` stands for
        "not set" there.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in run_config.items():
            name = key.replace("-", "_")
            if name not in fields:
                raise ConfigError(f"unknown config key '{key}'")
            values[name] = value
        if values.get("alpha") == "":
            values.pop("alpha")
        return cls(**{k: _coerce(k, v, fields[k].default) for k, v in values.items()})


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Convert a TOML value to the field's type, refusing what does not fit."""
    kind = type(default) if default is not None else float
    if kind is bool and isinstance(value, bool):
        return value
    if kind is bool or isinstance(value, bool):
        raise ConfigError(f"{name.replace('_', '-')}={value!r} is not a valid value")
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name.replace('_', '-')}={value!r} is not a valid {kind.__name__}"
        ) from None


def _validate(cfg: RunConfig) -> None:
    """Raise ConfigError for the first value that cannot run."""
    _choice("strategy", cfg.strategy, STRATEGIES)
    _choice("partition", cfg.partition, PARTITIONS)
    _choice("model", cfg.model, MODELS)
    _choice("api", cfg.api, APIS)
    for name in ("num_clients", "rounds", "local_epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{_flag(name)} must be at least 1, got {getattr(cfg, name)}")
    if not cfg.learning_rate > 0:
        raise ConfigError(f"--learning-rate must be positive, got {cfg.learning_rate}")
    if not cfg.proximal_mu >= 0:
        raise ConfigError(f"--proximal-mu must be zero or positive, got {cfg.proximal_mu}")
    if not 0 < cfg.fraction_fit <= 1:
        raise ConfigError(f"--fraction-fit must be in (0, 1], got {cfg.fraction_fit}")
    if not cfg.client_cpus > 0:
        raise ConfigError(f"--client-cpus must be positive, got {cfg.client_cpus}")
    if cfg.seed < 0:
        raise ConfigError(f"--seed must be zero or positive, got {cfg.seed}")
    if not 0 <= cfg.fail_rate < 1:
        raise ConfigError(f"--fail-rate must be in [0, 1), got {cfg.fail_rate}")
    if cfg.resume and cfg.api != "legacy":
        raise ConfigError("--resume needs --api legacy (the Message API runs all rounds at once)")
    if cfg.resume and cfg.output and Path(cfg.output) != Path(cfg.resume):
        raise ConfigError(f"--output '{cfg.output}' differs from --resume '{cfg.resume}'")
    if cfg.alpha is not None:
        if cfg.partition != "dirichlet":
            raise ConfigError(
                f"--alpha only applies to --partition dirichlet, not '{cfg.partition}'"
            )
        if not cfg.alpha > 0:
            raise ConfigError(f"--alpha must be positive, got {cfg.alpha}")
    _validate_scenario(cfg)


def _validate_scenario(cfg: RunConfig) -> None:
    """The comparison's scenarios: Byzantine clients, stragglers, quantity skew."""
    _choice("attack", cfg.attack, ATTACKS)
    if not 0 <= cfg.malicious <= cfg.num_clients:
        raise ConfigError(
            f"--malicious must be between 0 and --num-clients ({cfg.num_clients}), "
            f"got {cfg.malicious}"
        )
    if not cfg.attack_scale > 0:
        raise ConfigError(f"--attack-scale must be positive, got {cfg.attack_scale}")
    if not 0 <= cfg.stragglers <= 1:
        raise ConfigError(f"--stragglers must be in [0, 1], got {cfg.stragglers}")
    if cfg.stragglers > 0 and cfg.local_epochs < 2:
        raise ConfigError("--stragglers needs --local-epochs 2 or more (they run fewer)")
    if not cfg.quantity_skew >= 1:
        raise ConfigError(f"--quantity-skew must be 1 or more, got {cfg.quantity_skew}")
    if cfg.quantity_skew > 1 and cfg.partition != "iid":
        raise ConfigError(f"--quantity-skew only applies to --partition iid, not '{cfg.partition}'")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {_flag(name)} '{value}' (choose from {', '.join(allowed)})")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
