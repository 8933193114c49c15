"""The Flower App in pyproject.toml and its run config, against the one RunConfig and the CLI."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from flwr.app import Context, RecordDict

from fl_sim.config import ConfigError, RunConfig
from fl_sim.flwr_run import config_from_context
from fl_sim.run import main

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
APP = tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]
FIELDS = {f.name.replace("_", "-"): f for f in dataclasses.fields(RunConfig)}


def _context(run_config: dict) -> Context:
    return Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config)


def test_every_flag_has_a_key_of_the_same_name():
    assert set(APP["config"]) == set(FIELDS)


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_each_key_has_the_flags_default_and_type(key):
    value, default = APP["config"][key], FIELDS[key].default
    assert getattr(RunConfig.from_run_config({key: value}), FIELDS[key].name) == default
    if default not in (None, ""):
        assert type(value) is type(default), key


def test_the_app_config_is_the_default_run():
    assert RunConfig.from_run_config(APP["config"]) == RunConfig()


def test_components_are_the_shared_apps():
    assert APP["components"] == {
        "serverapp": "fl_sim.server_app:app",
        "clientapp": "fl_sim.client_app:app",
    }


@pytest.mark.parametrize(
    "flag, value",
    [
        ("strategy", "fedsgd"),
        ("num-clients", 0),
        ("rounds", "two"),
        ("learning-rate", -0.1),
        ("alpha", 0.3),
        ("num-clients", 70000),
        ("data", "/nonexistent/mnist.npz"),
    ],
)
def test_flwr_run_refuses_a_bad_value_with_the_cli_line(flag, value, capsys):
    assert main([f"--{flag}", str(value)]) == 2
    cli_line = capsys.readouterr().err
    with pytest.raises(ValueError):
        config_from_context(_context({**APP["config"], flag: value}))
    assert capsys.readouterr().err == cli_line


def test_flwr_run_writes_under_the_servers_folder_and_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = config_from_context(_context({**APP["config"], "strategy": "fedprox"}))
    out = Path(cfg.output)
    assert out.is_absolute() and out.parent == tmp_path / "runs"
    assert out.name.endswith("-fedprox")
    assert capsys.readouterr().out == f"outputs in {out}/\n"


def test_unknown_key_is_refused():
    with pytest.raises(ConfigError, match="roundz"):
        config_from_context(_context({"roundz": 2}))
