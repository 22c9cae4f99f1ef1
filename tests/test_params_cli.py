"""Bad input is refused before any work starts, with one line naming the parameter and its rule.

Most cases go straight to ``qbcat.engine.params.validate``; a representative handful run the real
command line in a subprocess (bad-input runs exit before the heavy imports, so they are quick)
and check the exit status, the single stderr line and that no output file appears at all.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from qbcat.engine.params import DEFAULTS, PARAMETERS, ParameterError, parse_assignment, validate

# (overrides, parameter named first in the message, piece of the rule the message must state)
BAD = [
    ({"gama_D": 0.1}, "gama_D", "unknown parameter"),
    ({"n_photon": 3}, "n_photon", "unknown parameter"),
    ({"gamma_D": -0.05}, "gamma_D", ">= 0"),
    ({"kappa_1": -1}, "kappa_1", ">= 0"),
    ({"g": -0.2}, "g", ">= 0"),
    ({"Omega": -0.5}, "Omega", ">= 0"),
    ({"omega_a": 0}, "omega_a", "> 0"),
    ({"omega_c": -1.0}, "omega_c", "> 0"),
    ({"n_fock": 1}, "n_fock", ">= 2"),
    ({"n_fock": 0}, "n_fock", ">= 2"),
    ({"t_max": 0}, "t_max", "> 0"),
    ({"t_max": -10.0}, "t_max", "> 0"),
    ({"n_t": 1}, "n_t", ">= 2"),
    ({"atol": 0.0}, "atol", "> 0"),
    ({"rtol": -1e-7}, "rtol", "> 0"),
    ({"nsteps": 0}, "nsteps", ">= 1"),
    ({"max_step": -0.1}, "max_step", ">= 0"),
    ({"g": math.nan}, "g", "finite"),
    ({"gamma_D": math.inf}, "gamma_D", "finite"),
    ({"t_max": -math.inf}, "t_max", "finite"),
    ({"omega_a": "nan"}, "omega_a", "finite"),
    ({"t_max": 10**400}, "t_max", "finite"),  # an integer no float can hold
    ({"n_fock": math.nan}, "n_fock", "integer"),
    ({"n_t": math.inf}, "n_t", "integer"),
    ({"omega_c": "fast"}, "omega_c", "number"),
    ({"g": None}, "g", "number"),
    ({"g": [0.1, 0.2]}, "g", "number"),
    ({"Omega": True}, "Omega", "number"),
    ({"n_fock": 4.5}, "n_fock", "integer"),
    ({"n_fock": "4.5"}, "n_fock", "integer"),
    ({"n_t": "many"}, "n_t", "integer"),
    ({"n_fock": True}, "n_fock", "integer"),
    ({"catalyst": 1}, "catalyst", "true or false"),
    ({"catalyst": 0.0}, "catalyst", "true or false"),
    ({"catalyst": "maybe"}, "catalyst", "true or false"),
    ({"method": "rk4"}, "method", "one of adams"),
    ({"method": 3}, "method", "one of adams"),
    ({"initial_qubit": "up"}, "initial_qubit", "one of ground, excited, plus"),
]


@pytest.mark.parametrize("overrides, name, rule", BAD, ids=[f"{n}-{o[n]!r}"[:40] for o, n, _ in BAD])
def test_validate_refuses_with_one_line_naming_parameter_and_rule(overrides, name, rule):
    with pytest.raises(ParameterError) as info:
        validate(overrides)
    message = str(info.value)
    assert message.startswith(f"{name}: ")
    assert rule in message
    assert "\n" not in message


def test_validate_names_an_unknown_parameter_among_good_ones():
    with pytest.raises(ParameterError, match=r"^zeta: unknown parameter"):
        validate({"g": 0.3, "zeta": 1.0, "n_fock": 4})


def test_validate_survives_non_string_keys():
    # a YAML mapping can have numeric keys; the error must still be a ParameterError
    with pytest.raises(ParameterError, match="unknown parameter"):
        validate({1: 2, "foo": 3})


@pytest.mark.parametrize("overrides, expected", [
    ({}, DEFAULTS),
    ({"atol": "1e-9"}, {"atol": 1e-9}),  # YAML 1.1 reads 1e-9 as a string
    ({"n_fock": 4.0}, {"n_fock": 4}),
    ({"n_fock": "6"}, {"n_fock": 6}),
    ({"omega_a": 2}, {"omega_a": 2.0}),
    ({"catalyst": "False"}, {"catalyst": False}),
    ({"g": 0, "gamma_D": 0, "kappa_1": 0, "Omega": 0}, {"g": 0.0, "gamma_D": 0.0, "kappa_1": 0.0}),
    ({"method": "bdf", "initial_qubit": "plus"}, {"method": "bdf", "initial_qubit": "plus"}),
])
def test_validate_accepts_and_coerces_good_values(overrides, expected):
    p = validate(overrides)
    assert set(p) == set(PARAMETERS)
    for name, value in expected.items():
        assert p[name] == value and type(p[name]) is PARAMETERS[name].kind, name


@pytest.mark.parametrize("text, expected", [
    ("g=0.3", ("g", 0.3)),
    ("n_fock=8", ("n_fock", 8)),
    (" catalyst = false ", ("catalyst", False)),
    ("method=bdf", ("method", "bdf")),
    ("atol=1e-10", ("atol", 1e-10)),
])
def test_parse_assignment(text, expected):
    assert parse_assignment(text) == expected


def test_parse_assignment_needs_an_equals_sign():
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        parse_assignment("g0.3")


# ---------------------------------------------------------------- the real command line


def qbcat(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qbcat.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


CLI_BAD = [
    (["--set", "gama_D=0.1"], "gama_D", "unknown parameter"),
    (["--set", "kappa_1=-0.1"], "kappa_1", ">= 0"),
    (["--set", "n_fock=1"], "n_fock", ">= 2"),
    (["--set", "n_fock=4.5"], "n_fock", "integer"),
    (["--set", "t_max=0"], "t_max", "> 0"),
    (["--set", "n_t=1"], "n_t", ">= 2"),
    (["--set", "g=nan"], "g", "finite"),
    (["--set", "Omega=inf"], "Omega", "finite"),
    (["--set", "omega_a=fast"], "omega_a", "number"),
    (["--set", "catalyst=1"], "catalyst", "true or false"),
    (["--set", "method=rk4"], "method", "one of"),
    (["--set", "g=0.3", "--set", "gamma_D=-1", "--set", "n_fock=4"], "gamma_D", ">= 0"),
]


@pytest.mark.parametrize("args, name, rule", CLI_BAD, ids=[" ".join(a) for a, _, _ in CLI_BAD])
def test_cli_refuses_bad_input_without_output(tmp_path, args, name, rule):
    result = qbcat("simulate", *args, "-o", "point.nc", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"qbcat: error: {name}: ")
    assert rule in lines[0]
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


@pytest.mark.parametrize("yaml_text, name, rule", [
    ("g: 0.3\nkappa_one: 0.1\n", "kappa_one", "unknown parameter"),
    ("n_fock: 4.5\n", "n_fock", "integer"),
    ("gamma_D: .nan\n", "gamma_D", "finite"),
    ("catalyst: 1\n", "catalyst", "true or false"),
    ("- g\n- 0.3\n", "params.yaml", "mapping"),
    ("g: [0.3\n", "params.yaml", "YAML"),
])
def test_cli_refuses_bad_config_file(tmp_path, yaml_text, name, rule):
    (tmp_path / "params.yaml").write_text(yaml_text)
    result = qbcat("simulate", "--config", "params.yaml", "-o", "point.nc", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"qbcat: error: {name}: ")
    assert rule in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_cli_solver_failure_names_point_and_remedy(tmp_path):
    out = tmp_path / "point.nc"
    out.write_text("an older result")  # a failed run must leave it alone
    result = qbcat("simulate", "--set", "nsteps=1", "--set", "n_fock=3", "--set", "t_max=5",
                   "--set", "n_t=6", "-o", out.name, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("qbcat: error: solver failed")
    for piece in ("nsteps=1", "n_fock=3", "t_max=5.0", "g=0.2", "engine=batched"):  # the point
        assert piece in line
    assert "larger nsteps" in line  # what to change
    assert out.read_text() == "an older result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["point.nc"]


def test_cli_config_file_with_set_override(tmp_path):
    (tmp_path / "point.yaml").write_text(
        "g: 0.3\nn_fock: 3\nt_max: 4\nn_t: 9\ngamma_D: 1e-2\ninitial_qubit: plus\n"
    )
    result = qbcat("simulate", "--config", "point.yaml", "--set", "g=0.45", "--set", "n_t=5",
                   "-o", "out/point.nc", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with xr.open_dataset(tmp_path / "out" / "point.nc") as ds:
        assert ds.attrs["g"] == 0.45  # --set wins over the file
        assert ds.attrs["n_t"] == 5 and ds.sizes["time"] == 5
        assert ds.attrs["n_fock"] == 3 and ds.attrs["t_max"] == 4.0
        assert ds.attrs["gamma_D"] == 0.01  # YAML 1.1 string "1e-2" read as a number
        assert ds.attrs["initial_qubit"] == "plus"
        assert ds.attrs["Omega"] == DEFAULTS["Omega"]  # unset: the default
        assert float(ds["time"][-1]) == 4.0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["point.nc"]  # no temp left


def test_qbcat_help_lists_commands(tmp_path):
    exe = shutil.which("qbcat", path=str(Path(sys.executable).parent)) or shutil.which("qbcat")
    assert exe, "the qbcat entry point is not installed (pip install -e .)"
    result = subprocess.run([exe, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("simulate", "params"):
        assert command in result.stdout
