"""Parameters of one simulation point: names, defaults, validation and identity.

One point is one full parameter set (physics + solver), named as in docs/conventions.md. Everything that
reads parameters (the CLI, the workflow, the datasets) goes through :func:`validate`, so a bad
value is refused with the same one-line message wherever it comes from, before any work starts.
A point's identity is :func:`point_id`, a hash of its canonical parameters (:func:`canonical`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

#: Bump when a change to the engine alters any computed number: it is part of every point's id,
#: so existing point datasets are recomputed rather than silently reused.
ENGINE_VERSION = 1

#: Integrators of QuTiP 5's MESolver that handle a time-dependent Liouvillian (engine "qutip").
SOLVER_METHODS = ("adams", "bdf", "lsoda", "dop853", "vern7", "vern9", "tsit5")

#: Engines: "batched" integrates many points together (qbcat.engine.batched, Dormand-Prince 5(4));
#: "qutip" runs one QuTiP MESolver per point with ``method`` (the reference and fallback).
ENGINES = ("batched", "qutip")

#: Initial qubit states; the catalyst always starts in its vacuum.
INITIAL_QUBIT_STATES = ("ground", "excited", "plus")


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: type  # float, int, bool or str
    default: Any
    description: str
    rule: str = ""  # "positive", "nonnegative", ">=2", or "" (any finite value)
    choices: tuple = ()
    catalyst_only: bool = False  # irrelevant (and dropped from the identity) for the baseline
    solver: bool = False
    words: tuple = ()  # strings a numeric parameter also accepts (n_fock: "auto")
    #: part of the identity only with n_fock "auto" (the cutoff policy's search and thresholds)
    auto_only: bool = False


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in [
        Parameter("omega_a", float, 1.0, "qubit transition frequency", "positive"),
        Parameter("omega_c", float, 1.0, "catalyst (oscillator) frequency", "positive", catalyst_only=True),
        Parameter("g", float, 0.2, "Jaynes-Cummings qubit-catalyst coupling", "nonnegative", catalyst_only=True),
        Parameter("Omega", float, 0.5, "drive amplitude: H_drive = Omega sin(omega_d t) sx", "nonnegative"),
        Parameter("omega_d", float, 1.0, "drive frequency", "nonnegative"),
        Parameter("kappa_1", float, 0.05, "catalyst photon-loss rate, c_op sqrt(kappa_1) a", "nonnegative",
                  catalyst_only=True),
        Parameter("gamma_D", float, 0.05, "qubit dephasing rate, c_op sqrt(gamma_D) sz "
                  "(coherences decay as exp(-2 gamma_D t))", "nonnegative"),
        Parameter("n_fock", int, 12, "oscillator truncation: photon numbers 0..n_fock-1; auto: the "
                  "smallest cutoff of the ladder n_fock_min, n_fock_min + n_fock_step, ..., n_fock_max "
                  "whose cutoff certificate passes", ">=2", catalyst_only=True, words=("auto",)),
        Parameter("n_fock_min", int, 6, "n_fock auto: the ladder's first cutoff", ">=2", catalyst_only=True,
                  auto_only=True),
        Parameter("n_fock_max", int, 40, "n_fock auto: the ladder's last cutoff (a point that fails there "
                  "is kept at n_fock_max and flagged)", ">=2", catalyst_only=True, auto_only=True),
        Parameter("n_fock_step", int, 2, "n_fock auto: the ladder's step", ">=1", catalyst_only=True,
                  auto_only=True),
        Parameter("cutoff_gap", int, 4, "cutoff certificate: the point is compared with a run at "
                  "n_fock + cutoff_gap", ">=1", catalyst_only=True),
        Parameter("cutoff_tolerance", float, 1e-3, "cutoff certificate: largest max_t deviation of "
                  "ergotropy, heat_current and energy_cat from the n_fock + cutoff_gap run", "positive",
                  catalyst_only=True, auto_only=True),
        Parameter("cutoff_top_tolerance", float, 1e-3, "cutoff certificate: largest population of the "
                  "top Fock level |n_fock - 1> over time", "positive", catalyst_only=True, auto_only=True),
        Parameter("t_max", float, 300.0, "final time (dimensionless; the paper's fs)", "positive"),
        Parameter("n_t", int, 3001, "number of output times, uniform on [0, t_max]", ">=2"),
        Parameter("catalyst", bool, True, "true: qubit + oscillator; false: the uncatalyzed baseline"),
        Parameter("initial_qubit", str, "ground", "initial qubit state", choices=INITIAL_QUBIT_STATES),
        Parameter("engine", str, "batched", "batched: the points of a batch integrated together by "
                  "qbcat's compiled Dormand-Prince 5(4)", choices=ENGINES, solver=True),
        Parameter("method", str, "adams", "QuTiP MESolver integrator (engine qutip only)",
                  choices=SOLVER_METHODS, solver=True),
        Parameter("atol", float, 1e-9, "absolute integration tolerance", "positive", solver=True),
        Parameter("rtol", float, 1e-7, "relative integration tolerance", "positive", solver=True),
        Parameter("nsteps", int, 100000, "maximum integrator steps between two output times", ">=1",
                  solver=True),
        Parameter("max_step", float, 0.0, "largest integrator step (0: no limit)", "nonnegative",
                  solver=True),
    ]
}

DEFAULTS: dict[str, Any] = {name: p.default for name, p in PARAMETERS.items()}


class ParameterError(ValueError):
    """A parameter value or name that breaks its rule; the message names both."""


def _coerce(p: Parameter, value: Any) -> Any:
    """Return ``value`` as ``p.kind`` (or one of ``p.words``) or raise ParameterError naming the
    parameter."""
    if p.words and isinstance(value, str) and value in p.words:
        return value
    if p.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ParameterError(f"{p.name}: expected true or false, got {value!r}")
    if p.kind is str:
        if not isinstance(value, str):
            raise ParameterError(f"{p.name}: expected one of {', '.join(p.choices)}, got {value!r}")
        if p.choices and value not in p.choices:
            raise ParameterError(f"{p.name}: must be one of {', '.join(p.choices)}, got {value!r}")
        return value
    if isinstance(value, bool):
        raise ParameterError(f"{p.name}: expected a{'n integer' if p.kind is int else ' number'}, got {value!r}")
    if isinstance(value, str):
        # YAML 1.1 reads "1e-9" as a string; accept what Python reads as a number.
        try:
            value = int(value) if p.kind is int else float(value)
        except ValueError:
            raise ParameterError(
                f"{p.name}: expected a{'n integer' if p.kind is int else ' number'}"
                f"{''.join(f' or {w}' for w in p.words)}, got {value!r}"
            ) from None
    if p.kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ParameterError(f"{p.name}: expected an integer, got {value!r}")
        return value
    if not isinstance(value, (int, float)):
        raise ParameterError(f"{p.name}: expected a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range, e.g. a 400-digit YAML integer
        raise ParameterError(f"{p.name}: must be finite, got an integer too large for a float") from None
    if not math.isfinite(value):
        raise ParameterError(f"{p.name}: must be finite, got {value!r}")
    return value + 0.0  # -0.0 -> 0.0: the same physics must give the same point id


def _check_rule(p: Parameter, value: Any) -> None:
    if value in p.words:
        return
    if p.rule == "positive" and not value > 0:
        raise ParameterError(f"{p.name}: must be > 0, got {value!r}")
    if p.rule == "nonnegative" and not value >= 0:
        raise ParameterError(f"{p.name}: must be >= 0, got {value!r}")
    if p.rule.startswith(">="):
        bound = int(p.rule[2:])
        if value < bound:
            raise ParameterError(f"{p.name}: must be >= {bound}, got {value!r}")


def validate(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults updated by ``overrides``, each value coerced to its type and checked.

    Raises ParameterError (one line naming the parameter and its rule) on an unknown name,
    a wrong type, a non-finite value or a broken rule.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(PARAMETERS), key=str)  # YAML keys need not be strings
    if unknown:
        raise ParameterError(
            f"{unknown[0]}: unknown parameter (known: {', '.join(PARAMETERS)})"
        )
    params = dict(DEFAULTS)
    for name, value in overrides.items():
        p = PARAMETERS[name]
        params[name] = _coerce(p, value)
        _check_rule(p, params[name])
    if params["n_fock"] == "auto" and params["n_fock_max"] < params["n_fock_min"]:
        raise ParameterError(f"n_fock_max: must be >= n_fock_min ({params['n_fock_min']}), "
                             f"got {params['n_fock_max']}")
    return params


def canonical(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that determine the result, validated; for the baseline without the catalyst's.

    Two parameter sets with the same canonical form give the same dataset, so they are one point.
    A fixed cutoff's certificate depends on cutoff_gap only (its thresholds flag it, in the
    sweep datasets, without a rerun); with n_fock "auto" the whole policy picks the cutoff.
    """
    full = validate(params)
    if not full["catalyst"]:
        full = {k: v for k, v in full.items() if not PARAMETERS[k].catalyst_only}
    elif full["n_fock"] != "auto":
        full = {k: v for k, v in full.items() if not PARAMETERS[k].auto_only}
    if full["engine"] != "qutip":
        del full["method"]  # the batched engine has one integrator
    return full


def point_id(params: dict[str, Any]) -> str:
    """Stable 16-hex-digit identity of a point: sha256 of its canonical parameters (sorted JSON)
    and ENGINE_VERSION."""
    return canonical_id(canonical(params))


def canonical_id(full: dict[str, Any]) -> str:
    """:func:`point_id` of parameters that are already canonical (``canonical(full) == full``),
    without validating them again: a large study computes ids of 10^4 points and more when
    Snakemake reads the workflow."""
    key = {"engine_version": ENGINE_VERSION, **full}
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_assignment(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` from the command line; the value is read as int, float, bool or string."""
    if "=" not in text:
        raise ParameterError(f"{text!r}: expected NAME=VALUE")
    name, raw = (s.strip() for s in text.split("=", 1))
    for convert in (int, float):
        try:
            return name, convert(raw)
        except ValueError:
            pass
    if raw.lower() in ("true", "false"):
        return name, raw.lower() == "true"
    return name, raw
