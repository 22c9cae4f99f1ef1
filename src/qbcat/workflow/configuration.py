"""The config -> a Study, with every check; a bad config is one ConfigError line naming its path.

:func:`load_config` is what the workflow runs on its config: duplicate YAML keys, the JSON
schema (``config/schema.yaml``, through ``snakemake.utils.validate``, which also fills in the
defaults), then the semantic checks of :func:`expand_config` (parameters, axes, ranges). The
line names the config path and the rule it broke, e.g. ``sweeps.g_scan.axes.gama_D: unknown
parameter``, before any job starts.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import yaml

from ..engine.params import PARAMETERS, ParameterError, validate
from .study import Axis, Study, Sweep

#: Parameters a sweep may not vary or override, and why.
FORBIDDEN = {
    "catalyst": "not a sweep parameter: every catalyzed point is paired with its uncatalyzed baseline "
    "(the 'case' dimension)",
}
#: Parameters a sweep may override (``set``) but not vary: a sweep dataset has one time axis.
NOT_SWEEPABLE = {
    "t_max": "cannot be an axis: all points of a sweep share one time axis (set it with 'set:' instead)",
    "n_t": "cannot be an axis: all points of a sweep share one time axis (set it with 'set:' instead)",
}

SWEEP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")

#: Range values are rounded to this many significant digits, so that a point's id does not
#: depend on the last bit of numpy's linspace/geomspace (which can differ between versions).
SIGNIFICANT_DIGITS = 12


class ConfigError(ValueError):
    """A config that breaks a rule; one line naming the config path, e.g. ``base.n_fock: must be >= 2``."""


# --------------------------------------------------------------------------------------------
# Config -> Study


def load_config(
    config: dict, schema_path: str | os.PathLike, config_files: Iterable[str | os.PathLike] = ()
) -> Study:
    """What the workflow runs on its config: every check, then :func:`expand_config`.

    1. duplicate keys in the YAML files (YAML would silently keep the last one);
    2. the JSON schema (``config/schema.yaml``) through ``snakemake.utils.validate``, which also
       fills in the schema's defaults (``config`` is updated in place);
    3. the semantic checks of :func:`expand_config`.
    Raises ConfigError with one line naming the config path and the rule it broke.
    """
    for path in config_files:
        check_duplicate_keys(path)
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate as snakemake_validate

    try:
        snakemake_validate(config, str(schema_path))
    except WorkflowError as exc:
        raise ConfigError(_schema_message(exc)) from None
    return expand_config(config)


def expand_config(config: Mapping) -> Study:
    """The Study of a schema-checked config (defaults filled in), after the semantic checks."""
    base = dict(config.get("base") or {})
    if "catalyst" in base:
        raise ConfigError(f"base.catalyst: {FORBIDDEN['catalyst']}")
    fixed = _validate_params(base, "base")
    sweeps = {}
    for name, raw in (config.get("sweeps") or {}).items():
        sweeps[name] = _expand_sweep(str(name), raw or {}, fixed)
    study = Study(
        sweeps,
        batch_size=_require(config, "batch_size"),
        allow_gaps=bool(_require(config, "allow_gaps")),
        resources=dict(_require(config, "resources")),
        sanity=_sanity_bounds(_require(config, "sanity")),
    )
    return study


def _require(config: Mapping, key: str) -> Any:
    if key not in config:
        raise ConfigError(f"{key}: missing (load the config with load_config, which fills in the "
                          "schema defaults)")
    return config[key]


#: Bounds on the sanity numbers (qbcat.data.datasets.SANITY_BOUNDS): names and the sign each must have.
SANITY_SIGNS = {"trace_error_max": ">= 0", "min_eigenvalue_qb": "<= 0", "first_law_residual_rel": ">= 0",
                "heat_channel_residual": ">= 0"}


def _sanity_bounds(raw: Mapping) -> dict:
    """The ``sanity`` section as floats (YAML reads 1e-6 as text), each with its sign checked."""
    bounds = {}
    for name, value in raw.items():
        path = f"sanity.{name}"
        if name not in SANITY_SIGNS:  # the schema refuses these first
            raise ConfigError(f"{path}: unknown key (allowed here: {', '.join(SANITY_SIGNS)})")
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        if (number < 0) if SANITY_SIGNS[name] == ">= 0" else (number > 0):
            raise ConfigError(f"{path}: must be {SANITY_SIGNS[name]}, got {value!r}")
        bounds[name] = number
    return bounds


def _validate_params(overrides: Mapping, path: str, base: Mapping | None = None) -> dict:
    """``validate({**base, **overrides})``, with its one-line message moved under ``path``."""
    try:
        return validate({**(base or {}), **overrides})
    except ParameterError as exc:
        raise ConfigError(_under(path, str(exc))) from None


def _under(path: str, message: str) -> str:
    """'g: must be >= 0' under 'sweeps.s.set' -> 'sweeps.s.set.g: must be >= 0'."""
    name, sep, rest = message.partition(": ")
    if sep and " " not in name:
        return f"{path}.{name}: {rest}"
    return f"{path}: {message}"


def _expand_sweep(name: str, raw: Mapping, base: dict) -> Sweep:
    path = f"sweeps.{name}"
    if not SWEEP_NAME.match(name):
        raise ConfigError(f"{path}: a sweep name must start with a letter and hold only letters, "
                          "digits, '_' and '-' (it names results/sweeps/NAME.nc)")
    overrides = dict(raw.get("set") or {})
    if "catalyst" in overrides:
        raise ConfigError(f"{path}.set.catalyst: {FORBIDDEN['catalyst']}")
    fixed = _validate_params(overrides, f"{path}.set", base)
    axes_raw = raw.get("axes") or {}
    if not axes_raw:
        raise ConfigError(f"{path}.axes: empty sweep: give at least one axis "
                          "(e.g. axes: {g: {values: [0.1, 0.2]}})")
    axes = []
    for pname, spec in axes_raw.items():
        apath = f"{path}.axes.{pname}"
        if pname not in PARAMETERS:
            raise ConfigError(f"{apath}: unknown parameter (known: {', '.join(PARAMETERS)})")
        if pname in FORBIDDEN:
            raise ConfigError(f"{apath}: {FORBIDDEN[pname]}")
        if pname in NOT_SWEEPABLE:
            raise ConfigError(f"{apath}: {NOT_SWEEPABLE[pname]}")
        if pname in overrides:
            raise ConfigError(f"{path}.set.{pname}: {pname} is also an axis of this sweep; "
                              "remove it from 'set'")
        axes.append(Axis(pname, _axis_values(pname, spec or {}, apath, fixed)))
    fixed = {k: v for k, v in fixed.items() if k not in axes_raw}
    return Sweep(name, tuple(axes), fixed, str(raw.get("description") or ""))


def _axis_values(pname: str, spec: Mapping, path: str, fixed: dict) -> tuple:
    values, rng = spec.get("values"), spec.get("range")
    if (values is None) == (rng is None):
        raise ConfigError(f"{path}: give exactly one of 'values: [...]' or "
                          "'range: {start, stop, num, scale}'")
    if values is not None:
        where = f"{path}.values"
        if not isinstance(values, list):
            raise ConfigError(f"{where}: expected a list, got {values!r}")
        if not values:
            raise ConfigError(f"{where}: empty list: give at least one value")
        raw = [(f"{where}[{i}]", v) for i, v in enumerate(values)]
    else:
        where = f"{path}.range"
        raw = [(where, v) for v in _range_values(pname, rng, where)]
    coerced = []
    for vpath, value in raw:
        try:
            coerced.append(validate({**fixed, pname: value})[pname])
        except ParameterError as exc:
            _, _, rest = str(exc).partition(": ")
            raise ConfigError(f"{vpath}: {rest}") from None
    seen = set()
    for value in coerced:
        if value in seen:
            raise ConfigError(f"{where}: duplicate value {value!r} (each value is one grid line)")
        seen.add(value)
    return tuple(coerced)


def _range_values(pname: str, rng: Mapping, path: str) -> list:
    if PARAMETERS[pname].kind not in (int, float):
        raise ConfigError(f"{path}: a range needs a numeric parameter; use 'values: [...]' for {pname}")
    for key in ("start", "stop", "num"):
        if rng.get(key) is None:
            raise ConfigError(f"{path}.{key}: required")
    start, stop, num = rng["start"], rng["stop"], rng["num"]
    scale = rng.get("scale") or "linear"
    for key, value in (("start", start), ("stop", stop)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{path}.{key}: expected a finite number, got {value!r}")
    if isinstance(num, bool) or not isinstance(num, int):
        raise ConfigError(f"{path}.num: expected an integer, got {num!r}")
    if num < 1:
        raise ConfigError(f"{path}.num: must be >= 1, got {num}")
    if scale == "log":
        if not (start > 0 and stop > 0):
            raise ConfigError(f"{path}: a log range needs start > 0 and stop > 0, "
                              f"got start={start}, stop={stop}")
        grid = np.geomspace(start, stop, num)
    elif scale == "linear":
        grid = np.linspace(start, stop, num)
    else:
        raise ConfigError(f"{path}.scale: must be linear or log, got {scale!r}")
    return [float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in grid]


# --------------------------------------------------------------------------------------------
# Errors from the YAML files and the schema, as one line naming the path


def check_duplicate_keys(path: str | os.PathLike) -> None:
    """Refuse a YAML mapping that repeats a key (YAML loaders keep the last silently)."""
    try:
        with open(path, encoding="utf-8") as fh:
            root = yaml.compose(fh, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return  # Snakemake reports unreadable or invalid files itself
    stack = [(root, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, value_node in node.value:
                key = key_node.value
                here = f"{where}.{key}" if where else str(key)
                if key in seen:
                    raise ConfigError(f"{here}: given twice in {path} (YAML keeps only the last; "
                                      "a map over the same parameter twice is not a 2-D map)")
                seen.add(key)
                stack.append((value_node, here))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node.value))


def _schema_message(exc: Exception) -> str:
    """One line from snakemake.utils.validate's WorkflowError (which wraps jsonschema's error)."""
    import jsonschema

    err = exc  # snakemake raises WorkflowError from within jsonschema's error: its __context__
    while err is not None and not isinstance(err, jsonschema.ValidationError):
        err = err.__cause__ or err.__context__
    if err is None:
        return " ".join(str(exc).split())
    path = _dotted(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed), key=str)
        key = f"{path}.{extra[0]}" if path else str(extra[0])
        return f"{key}: unknown key (allowed here: {', '.join(allowed)})"
    if err.validator == "type":
        kinds = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        expected = " or ".join(_JSON_TYPES.get(k, k) for k in kinds if k != "null")
        return f"{path or 'config'}: expected {expected}, got {err.instance!r}"
    if err.validator == "minimum":
        return f"{path}: must be >= {err.validator_value}, got {err.instance!r}"
    if err.validator == "exclusiveMinimum":
        return f"{path}: must be > {err.validator_value}, got {err.instance!r}"
    if err.validator == "enum":
        return f"{path}: must be one of {', '.join(map(str, err.validator_value))}, got {err.instance!r}"
    if err.validator == "required":
        return f"{path}: {err.message}"
    return f"{path or 'config'}: {err.message}"


_JSON_TYPES = {"array": "a list", "object": "a mapping", "integer": "an integer", "number": "a number",
               "string": "text", "boolean": "true or false"}


def _dotted(parts: Iterable) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
