"""Operators of the driven qubit battery and its oscillator catalyst (docs/conventions.md, hbar = 1).

Basis: qubit excited state = sz eigenvalue +1 = ``basis(2, 0)``; ground = ``basis(2, 1)``;
``sigmap()`` raises ground to excited. Qubit first in tensor products: ``qubit (x) oscillator``.

    H(t)     = H_QB + H_int + H_cat + s(t) sx,   s(t) = Omega sin(omega_d t)
    H_QB     = omega_a/2 sz
    H_cat    = omega_c a^dag a                    (n_fock levels)
    H_int    = g (s+ a + s- a^dag)
    c_ops    = [sqrt(gamma_D) sz, sqrt(kappa_1) a]

The uncatalyzed baseline is the qubit alone: H_QB + s(t) sx, c_ops = [sqrt(gamma_D) sz].

The operators are built once, as numpy arrays (:func:`operators`): the batched engine uses
them as they are, so a batch job never imports QuTiP; :func:`build_model` wraps the same
arrays as QuTiP objects for the QuTiP engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

SX = np.array([[0, 1], [1, 0]], dtype=complex)
SY = np.array([[0, -1j], [1j, 0]], dtype=complex)
SZ = np.array([[1, 0], [0, -1]], dtype=complex)
SP = np.array([[0, 1], [0, 0]], dtype=complex)  # s+ |g> = |e>, with |e> = (1, 0)


def destroy(n: int) -> np.ndarray:
    """The annihilation operator a on n Fock levels: a|k> = sqrt(k)|k-1>."""
    return np.diag(np.sqrt(np.arange(1, n, dtype=float)), 1).astype(complex)


@dataclass(frozen=True)
class Model:
    """Static pieces of one point's Lindbladian, all on the full Hilbert space.

    The operator fields hold numpy arrays (:func:`operators`) or QuTiP objects
    (:func:`build_model`); the functions of qbcat.engine.observables work on either.
    """

    H_static: Any  # H_QB + H_int + H_cat (H_QB alone for the baseline)
    drive_op: Any  # sx, multiplied by s(t) = Omega sin(omega_d t)
    c_ops: list
    rho0: Any
    H_QB: Any
    H_int: Any  # zero operator for the baseline
    H_cat: Any  # zero operator for the baseline
    sx: Any
    sy: Any
    sz: Any
    num: Any  # a^dag a (zero for the baseline)
    top: Any  # |n_fock - 1><n_fock - 1| on the catalyst, the truncation indicator (zero for the baseline)
    identity: Any
    Omega: float
    omega_d: float
    catalyst: bool

    def drive(self, t: float) -> float:
        """s(t) = Omega sin(omega_d t), the drive's coefficient of sx."""
        return self.Omega * math.sin(self.omega_d * t)

    def hamiltonian(self):
        """H(t) as a QobjEvo with a Python coefficient (QuTiP models only)."""
        import qutip

        return qutip.QobjEvo([self.H_static, [self.drive_op, lambda t: self.drive(t)]])


def initial_qubit_state(name: str) -> np.ndarray:
    """|e> = (1, 0), |g> = (0, 1), |+> = (|e> + |g>)/sqrt 2, as a density matrix."""
    ket = {"ground": np.array([0, 1.0]), "excited": np.array([1.0, 0]),
           "plus": np.array([1.0, 1.0]) / math.sqrt(2)}[name].astype(complex)
    return np.outer(ket, ket.conj())


def operators(p: dict) -> Model:
    """The Model of validated parameters ``p`` (qbcat.engine.params.validate) as numpy arrays."""
    rho_q = initial_qubit_state(p["initial_qubit"])
    if p["catalyst"]:
        n = p["n_fock"]
        iq, ic = np.eye(2), np.eye(n)
        a = np.kron(iq, destroy(n))
        sx, sy, sz, sp = (np.kron(s, ic) for s in (SX, SY, SZ, SP))
        num = a.conj().T @ a
        top_level = np.zeros((n, n), dtype=complex)
        top_level[n - 1, n - 1] = 1.0
        top = np.kron(iq, top_level)
        H_QB = 0.5 * p["omega_a"] * sz
        H_cat = p["omega_c"] * num
        H_int = p["g"] * (sp @ a + sp.conj().T @ a.conj().T)
        c_ops = [math.sqrt(p["gamma_D"]) * sz, math.sqrt(p["kappa_1"]) * a]
        vacuum = np.zeros((n, n), dtype=complex)
        vacuum[0, 0] = 1.0
        rho0 = np.kron(rho_q, vacuum)
    else:
        sx, sy, sz = SX.copy(), SY.copy(), SZ.copy()
        num = np.zeros((2, 2), dtype=complex)
        top = np.zeros((2, 2), dtype=complex)
        H_QB = 0.5 * p["omega_a"] * sz
        H_cat = H_int = np.zeros((2, 2), dtype=complex)
        c_ops = [math.sqrt(p["gamma_D"]) * sz]
        rho0 = rho_q
    return Model(
        H_static=H_QB + H_int + H_cat, drive_op=sx, c_ops=c_ops, rho0=rho0, H_QB=H_QB, H_int=H_int,
        H_cat=H_cat, sx=sx, sy=sy, sz=sz, num=num, top=top, identity=np.eye(len(sx), dtype=complex),
        Omega=p["Omega"], omega_d=p["omega_d"], catalyst=p["catalyst"],
    )


def build_model(p: dict) -> Model:
    """The Model of validated parameters ``p`` as QuTiP objects (dims qubit x oscillator)."""
    import qutip

    arrays = operators(p)
    dims = [[2, p["n_fock"]], [2, p["n_fock"]]] if p["catalyst"] else [[2], [2]]

    def wrap(value):  # sparse, as qutip.tensor would make them: MESolver is fastest so
        if isinstance(value, np.ndarray):
            return qutip.Qobj(value, dims=dims).to("CSR")
        if isinstance(value, list):
            return [wrap(v) for v in value]
        return value

    return Model(**{f.name: wrap(getattr(arrays, f.name)) for f in fields(Model)})
