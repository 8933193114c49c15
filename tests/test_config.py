"""The one configuration object and the CLI's refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fl_sim.config import ConfigError, RunConfig
from fl_sim.run import main, parse_config


def test_defaults_are_valid_and_match_the_cli():
    assert parse_config([]) == RunConfig()


def test_cli_flags_fill_the_same_fields_as_flwr_run_keys():
    from_cli = parse_config(
        [
            "--strategy",
            "fedprox",
            "--proximal-mu",
            "0.1",
            "--local-epochs",
            "2",
            "--partition",
            "dirichlet",
            "--alpha",
            "0.1",
        ]
    )
    from_toml = RunConfig.from_run_config(
        {
            "strategy": "fedprox",
            "proximal-mu": 0.1,
            "local-epochs": 2,
            "partition": "dirichlet",
            "alpha": 0.1,
        }
    )
    assert from_cli == from_toml
    assert from_cli.dirichlet_alpha == 0.1


def test_run_config_treats_empty_alpha_as_unset():
    assert RunConfig.from_run_config({"alpha": -1.0, "output": ""}).alpha is None


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"strategy": "fedsgd"}, "fedsgd"),
        ({"num_clients": 0}, "--num-clients"),
        ({"rounds": -1}, "--rounds"),
        ({"learning_rate": -0.1}, "--learning-rate"),
        ({"proximal_mu": -1.0}, "--proximal-mu"),
        ({"fraction_fit": 0.0}, "--fraction-fit"),
        ({"fraction_fit": 1.5}, "--fraction-fit"),
        ({"alpha": 0.5}, "--alpha"),
        ({"partition": "dirichlet", "alpha": 0.0}, "--alpha"),
        ({"model": "resnet"}, "resnet"),
    ],
)
def test_bad_values_are_refused_by_name(changes, words):
    with pytest.raises(ConfigError, match=words):
        RunConfig(**changes)


def test_unknown_run_config_key_is_refused():
    with pytest.raises(ConfigError, match="local-epoch"):
        RunConfig.from_run_config({"local-epoch": 2})


def test_non_integer_run_config_value_is_refused():
    with pytest.raises(ConfigError, match="rounds"):
        RunConfig.from_run_config({"rounds": 2.5})


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--strategy", "fedsgd"], "fedsgd"),
        (["--num-clients", "0"], "--num-clients"),
        (["--learning-rate", "-1"], "--learning-rate"),
        (["--alpha", "0.3"], "--alpha"),
        (["--rounds", "two"], "two"),
        (["--num-clients", "70000"], "70000"),
        (["--data", "/nonexistent/mnist.npz"], "/nonexistent/mnist.npz"),
    ],
)
def test_cli_refuses_bad_input_in_one_line_with_exit_2(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert "Traceback" not in err


def test_cli_error_as_a_user_sees_it(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    result = subprocess.run(
        [sys.executable, "-m", "fl_sim.run", "--data", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert str(bad) in result.stderr and "Traceback" not in result.stderr
