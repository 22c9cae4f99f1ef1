"""Operators of the driven qubit battery and its oscillator catalyst (docs/conventions.md, hbar = 1).

Basis: qubit excited state = sz eigenvalue +1 = ``basis(2, 0)``; ground = ``basis(2, 1)``;
``sigmap()`` raises ground to excited. Qubit first in tensor products: ``qubit (x) oscillator``.

    H(t)     = H_QB + H_int + H_cat + s(t) sx,   s(t) = Omega sin(omega_d t)
    H_QB     = omega_a/2 sz
    H_cat    = omega_c a^dag a                    (n_fock levels)
    H_int    = g (s+ a + s- a^dag)
    c_ops    = [sqrt(gamma_D) sz, sqrt(kappa_1) a]

The uncatalyzed baseline is the qubit alone: H_QB + s(t) sx, c_ops = [sqrt(gamma_D) sz].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import qutip


@dataclass(frozen=True)
class Model:
    """Static pieces of one point's Lindbladian, all on the full Hilbert space."""

    H_static: qutip.Qobj  # H_QB + H_int + H_cat (H_QB alone for the baseline)
    drive_op: qutip.Qobj  # sx, multiplied by s(t) = Omega sin(omega_d t)
    c_ops: list
    rho0: qutip.Qobj
    H_QB: qutip.Qobj
    H_int: qutip.Qobj  # zero operator for the baseline
    H_cat: qutip.Qobj  # zero operator for the baseline
    sx: qutip.Qobj
    sy: qutip.Qobj
    sz: qutip.Qobj
    num: qutip.Qobj  # a^dag a (zero for the baseline)
    Omega: float
    omega_d: float
    catalyst: bool

    def drive(self, t: float) -> float:
        """s(t) = Omega sin(omega_d t), the drive's coefficient of sx."""
        return self.Omega * math.sin(self.omega_d * t)

    def drive_rate(self, t: float) -> float:
        """ds/dt = Omega omega_d cos(omega_d t)."""
        return self.Omega * self.omega_d * math.cos(self.omega_d * t)

    def hamiltonian(self) -> qutip.QobjEvo:
        """H(t) as a QobjEvo with a Python coefficient (no Cython compilation needed)."""
        return qutip.QobjEvo([self.H_static, [self.drive_op, lambda t: self.drive(t)]])


def initial_qubit_state(name: str) -> qutip.Qobj:
    """|e> = basis(2,0), |g> = basis(2,1), |+> = (|e> + |g>)/sqrt 2, as a density matrix."""
    excited, ground = qutip.basis(2, 0), qutip.basis(2, 1)
    ket = {"ground": ground, "excited": excited, "plus": (excited + ground).unit()}[name]
    return qutip.ket2dm(ket)


def build_model(p: dict) -> Model:
    """The Model for validated parameters ``p`` (see qbcat.params.validate)."""
    rho_q = initial_qubit_state(p["initial_qubit"])
    if p["catalyst"]:
        n = p["n_fock"]
        iq, ic = qutip.qeye(2), qutip.qeye(n)
        a = qutip.tensor(iq, qutip.destroy(n))
        sx = qutip.tensor(qutip.sigmax(), ic)
        sy = qutip.tensor(qutip.sigmay(), ic)
        sz = qutip.tensor(qutip.sigmaz(), ic)
        sp = qutip.tensor(qutip.sigmap(), ic)
        num = a.dag() * a
        H_QB = 0.5 * p["omega_a"] * sz
        H_cat = p["omega_c"] * num
        H_int = p["g"] * (sp * a + sp.dag() * a.dag())
        c_ops = [math.sqrt(p["gamma_D"]) * sz, math.sqrt(p["kappa_1"]) * a]
        rho0 = qutip.tensor(rho_q, qutip.fock_dm(n, 0))
    else:
        sx, sy, sz = qutip.sigmax(), qutip.sigmay(), qutip.sigmaz()
        num = 0 * sz
        H_QB = 0.5 * p["omega_a"] * sz
        H_cat = H_int = 0 * sz
        c_ops = [math.sqrt(p["gamma_D"]) * sz]
        rho0 = rho_q
    return Model(
        H_static=H_QB + H_int + H_cat,
        drive_op=sx,
        c_ops=c_ops,
        rho0=rho0,
        H_QB=H_QB,
        H_int=H_int,
        H_cat=H_cat,
        sx=sx,
        sy=sy,
        sz=sz,
        num=num,
        Omega=p["Omega"],
        omega_d=p["omega_d"],
        catalyst=p["catalyst"],
    )
