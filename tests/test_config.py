"""The one configuration object and the CLI's refusals."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from fl_sim.config import ConfigError, RunConfig
from fl_sim.data import DataError
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
    assert RunConfig.from_run_config({"alpha": "", "output": ""}).alpha is None


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


BAD_INPUT = [
    (["--strategy", "fedsgd"], "fedsgd"),
    (["--model", "resnet"], "resnet"),
    (["--partition", "random"], "random"),
    (["--num-clients", "0"], "--num-clients"),
    (["--num-clients", "-3"], "--num-clients"),
    (["--rounds", "0"], "--rounds"),
    (["--local-epochs", "0"], "--local-epochs"),
    (["--batch-size", "-32"], "--batch-size"),
    (["--learning-rate", "-1"], "--learning-rate"),
    (["--learning-rate", "0"], "--learning-rate"),
    (["--proximal-mu", "-0.1"], "--proximal-mu"),
    (["--fraction-fit", "0"], "--fraction-fit"),
    (["--fraction-fit", "1.5"], "--fraction-fit"),
    (["--fail-rate", "1"], "--fail-rate"),
    (["--fail-rate", "-0.2"], "--fail-rate"),
    (["--client-cpus", "0"], "--client-cpus"),
    (["--alpha", "0.3"], "--alpha"),
    (["--partition", "dirichlet", "--alpha", "0"], "--alpha"),
    (["--partition", "dirichlet", "--alpha", "-1"], "--alpha"),
    (["--rounds", "two"], "two"),
    (["--num-clients", "70000"], "70000"),
    (["--data", "/nonexistent/mnist.npz"], "/nonexistent/mnist.npz"),
    (["--resume", "/nonexistent/run"], "/nonexistent/run"),
    (["--api", "grpc"], "grpc"),
]


@pytest.mark.parametrize("argv, words", BAD_INPUT)
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


@pytest.mark.parametrize("argv, words", [(a, w) for a, w in BAD_INPUT if a[1] != "two"])
def test_flwr_run_config_refuses_the_same_values(argv, words):
    """The same values as ``flwr run --run-config`` keys give the same ConfigError."""
    from fl_sim.partition import partition_of

    pairs = dict(zip(argv[::2], argv[1::2], strict=True))
    values = {flag[2:]: _toml_value(value) for flag, value in pairs.items()}
    with pytest.raises((ConfigError, DataError), match=re.escape(words.lstrip("-"))):
        cfg = RunConfig.from_run_config(values)
        partition_of(cfg)
        if cfg.resume:
            from fl_sim.outputs import claim_output

            claim_output(cfg)


def _toml_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def test_non_empty_output_needs_resume_or_overwrite(tmp_path, small_npz, capsys):
    (tmp_path / "old.txt").write_text("an earlier run")
    assert main(["--output", str(tmp_path), "--data", small_npz]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overwrite" in err and str(tmp_path) in err


def test_resume_with_another_config_is_refused(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(RunConfig(rounds=4).to_dict()))
    assert main(["--resume", str(tmp_path), "--rounds", "6"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rounds=6" in err and "4" in err
