"""Point datasets: a Trajectory as a self-describing xarray Dataset, written atomically as NetCDF4.

Data contract (SPEC.md): coordinate ``time``; observables under their SPEC names; ``units`` and
``long_name`` on every variable; every parameter (physics and solver) as a global attribute
under its own name; the point's id and the qbcat and QuTiP versions. NetCDF has no boolean
attribute, so ``catalyst`` is stored as the integer 1 or 0 (see :func:`read_params`).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import qutip
import xarray as xr

from . import __version__
from .params import ENGINE_VERSION, PARAMETERS, canonical, point_id
from .solve import Trajectory

ENERGY_UNITS = "1"  # hbar = 1, energies in units of hbar * omega_0 (the frequency unit)

#: name -> (units, long_name, comment) for every variable a point dataset can hold.
VARIABLES = {
    "time": ("1", "time", "dimensionless, in units of 1/omega_0 (the paper labels it fs)"),
    "ergotropy": (ENERGY_UNITS, "qubit ergotropy", "Tr[rho_QB H_QB] - passive-state energy (Eq. 6)"),
    "energy_qb": (ENERGY_UNITS, "qubit energy", "Tr[rho_QB H_QB]"),
    "energy_cat": (ENERGY_UNITS, "catalyst energy", "Tr[rho H_cat] (Eq. 7)"),
    "power": (ENERGY_UNITS, "drive power", "P = Tr[rho dH_0/dt] = Omega omega_d cos(omega_d t) <sx>"),
    "heat_current": (ENERGY_UNITS, "heat current into the battery",
                     "J = Tr[(d rho_QB/dt)(H_QB + H_drive)] (Eq. 11), d rho/dt from the Lindbladian; "
                     "J < 0 is energy backflow"),
    "net_flux": (ENERGY_UNITS, "net energy flux", "Tr[(d rho/dt) H_0(t)] (Eq. 8)"),
    "internal_energy": (ENERGY_UNITS, "battery internal energy",
                        "E = Tr[rho_QB (H_QB + H_drive)]; dE/dt = J + P (Eq. 10)"),
    "bloch_x": ("1", "qubit Bloch vector x", "<sx>"),
    "bloch_y": ("1", "qubit Bloch vector y", "<sy>"),
    "bloch_z": ("1", "qubit Bloch vector z", "<sz>; +1 is the excited state"),
    "trace": ("1", "trace of rho", "Tr[rho] without output normalisation; 1 up to integration error"),
}
# Energy-rate variables are in energy per unit time, which is again dimensionless here.

CONVENTIONS = {
    "basis_convention": "qubit excited state = sz eigenvalue +1 = qutip basis(2,0); ground = basis(2,1)",
    "dephasing_convention": "drho/dt = ... + gamma_D D[sz]rho, D[L]rho = L rho L^dag - 1/2{L^dag L, rho}; "
    "coherences decay as exp(-2 gamma_D t)",
    "hamiltonian": "H = omega_a/2 sz + omega_c a^dag a + g(s+ a + s- a^dag) + Omega sin(omega_d t) sx; hbar = 1",
}


def to_dataset(traj: Trajectory) -> xr.Dataset:
    """The point dataset of a Trajectory (see module docstring)."""
    p = traj.params
    ds = xr.Dataset(coords={"time": ("time", traj.time)})
    for name, values in traj.data.items():
        ds[name] = ("time", np.asarray(values, dtype=float))
    for name in ds.variables:
        units, long_name, comment = VARIABLES[name]
        ds[name].attrs.update(units=units, long_name=long_name, comment=comment)
    attrs = {}
    for name, value in canonical(p).items():
        attrs[name] = int(value) if PARAMETERS[name].kind is bool else value
    attrs["point_id"] = point_id(p)
    attrs["engine_version"] = ENGINE_VERSION
    attrs.update({f"sanity_{k}": v for k, v in traj.sanity.items()})
    attrs["solver_wall_time_s"] = traj.wall_time
    attrs.update(CONVENTIONS)
    attrs.update(
        Conventions="CF-1.10",
        title=f"qbcat point {attrs['point_id']} ({'catalyzed' if p['catalyst'] else 'uncatalyzed baseline'})",
        source=f"qbcat {__version__}, QuTiP {qutip.__version__}",
        references="S.-C. Zhao, Quantum catalysis-enhanced extract energy in qubit quantum battery, "
        "arXiv:2512.07906",
        date_created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        qbcat_version=__version__,
        qutip_version=qutip.__version__,
    )
    ds.attrs.update(attrs)
    return ds


def read_params(ds: xr.Dataset) -> dict:
    """The point's canonical parameters back from a dataset's attributes."""
    out = {}
    for name, p in PARAMETERS.items():
        if name in ds.attrs:
            v = ds.attrs[name]
            v = v.item() if hasattr(v, "item") else v
            out[name] = bool(v) if p.kind is bool else p.kind(v)
    return out


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write ``ds`` to ``path`` atomically: a temporary file in the same folder, renamed into place.

    A crash or kill leaves either the old file or none, never a truncated one under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = {}
    if compress:
        encoding = {v: {"zlib": True, "complevel": 1, "shuffle": True} for v in ds.data_vars}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
