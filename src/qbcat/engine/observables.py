"""Observables of docs/conventions.md as expectation values, and ergotropy.

Every observable is a linear functional of rho(t) at fixed t, so the engine asks the solver for
a few expectation values and never stores states. Rates use the adjoint Lindbladian:

    Tr[L_t(rho) B] = Tr[rho L_t^dag(B)],
    L_t^dag(B) = i[H(t), B] + sum_k (L_k^dag B L_k - 1/2 {L_k^dag L_k, B}),

which is the Lindbladian applied to the state, moved onto the operator (exact, no finite
differences). With H(t) = H_static + s(t) X and an operator B(t) = B0 + s(t) B1,

    L_t^dag(B(t)) = C0 + s C1 + s^2 C2,
    C0 = L0^dag(B0),  C1 = L0^dag(B1) + i[X, B0],  C2 = i[X, B1],

where L0 is the Lindbladian without the drive.

Operators are numpy arrays or QuTiP objects alike (products with ``@``, adjoints with
:func:`dag`), so the batched engine uses these functions without importing QuTiP.
"""

from __future__ import annotations

import numpy as np


def dag(A):
    """The adjoint of a numpy array or a QuTiP object."""
    return A.dag() if hasattr(A, "dag") else A.conj().T


def commutator(A, B):
    """[A, B] = AB - BA."""
    return A @ B - B @ A


def adjoint_dissipator(c_ops, B):
    """sum_k (L_k^dag B L_k - 1/2 {L_k^dag L_k, B})."""
    out = 0 * B
    for L in c_ops:
        LdL = dag(L) @ L
        out = out + dag(L) @ B @ L - 0.5 * (LdL @ B + B @ LdL)
    return out


def adjoint_lindbladian(H, c_ops, B):
    """L^dag(B) = i[H, B] + adjoint dissipator: d<B>/dt for a time-independent B."""
    return 1j * commutator(H, B) + adjoint_dissipator(c_ops, B)


def rate_operators(model, B0, B1):
    """(C0, C1, C2) with Tr[d rho/dt (B0 + s B1)] = <C0> + s <C1> + s^2 <C2>; see module doc."""
    X = model.drive_op
    C0 = adjoint_lindbladian(model.H_static, model.c_ops, B0)
    C1 = adjoint_lindbladian(model.H_static, model.c_ops, B1) + 1j * commutator(X, B0)
    C2 = 1j * commutator(X, B1)
    return C0, C1, C2


def channel_operators(model) -> dict:
    """Time-independent operators of the two channels of the heat current J (docs/heat-channels.md).

    With h(t) = H_QB + s(t) sx the battery's Hamiltonian, J = Tr[L_t(rho) h(t)] splits into

        J_cat   = Tr[-i[H_int, rho] h(t)] = <i[H_int, h(t)]> = <Jc0> + s(t) <Jc1>,
                  Jc0 = i[H_int, H_QB],  Jc1 = i[H_int, sx];
        J_deph  = gamma_D Tr[D[sz](rho) h(t)] = gamma_D <sz h sz - h> = -2 gamma_D s(t) <sx>,

    the other terms giving nothing: Tr[-i[h, rho] h] = 0 (cyclic trace), and H_cat and D[a] act on
    the catalyst only, so they commute with h. Returns {"Jc0", "Jc1"} for a catalyzed model and {}
    for the baseline (no H_int: its catalyst channel is zero); the dephasing channel needs no
    operator of its own (it is -2 gamma_D s(t) times the Bloch x component).
    """
    if not model.catalyst:
        return {}
    X = model.drive_op
    return {
        "Jc0": 1j * commutator(model.H_int, model.H_QB),
        "Jc1": 1j * commutator(model.H_int, X),
    }


def dephasing_heat_current(gamma_D: float, s, bloch_x):
    """J_deph = gamma_D Tr[D[sz](rho) (H_QB + s sx)] = -2 gamma_D s <sx>: D^dag[sz] keeps sz (and
    H_QB) and flips sx, sz sx sz = -sx."""
    return -2.0 * gamma_D * np.asarray(s) * np.asarray(bloch_x)


def ergotropy_qubit(x, y, z, omega_a: float, trace=1.0):
    """Ergotropy of a qubit with Bloch vector (x, y, z) under H = omega_a/2 sz (Eq. 6).

    Eigenvalues of rho are (tr +- |r|)/2, energies -+omega_a/2, so
    E = Tr[rho H] - passive energy = omega_a/2 z - omega_a/2 (-(tr+|r|)/2 + (tr-|r|)/2)
      = omega_a/2 (z + |r|).   (``trace`` does not enter; it is kept for symmetry of use.)
    """
    r = np.sqrt(np.asarray(x) ** 2 + np.asarray(y) ** 2 + np.asarray(z) ** 2)
    return 0.5 * omega_a * (np.asarray(z) + r)


def ergotropy(rho, H) -> np.ndarray:
    """General ergotropy Tr[rho H] - sum_k r_k e_k for any dimension (Eq. 6).

    r_k: eigenvalues of rho in descending order; e_k: eigenvalues of H in ascending order.
    ``rho`` is an array (..., d, d) (a stack over times is fine) or a Qobj; ``H`` is Hermitian.
    """
    rho = rho.full() if hasattr(rho, "full") else np.asarray(rho)
    H = H.full() if hasattr(H, "full") else np.asarray(H)
    energy = np.einsum("...ij,ji->...", rho, H).real
    r_desc = np.linalg.eigvalsh(rho)[..., ::-1]
    e_asc = np.linalg.eigvalsh(H)
    return energy - r_desc @ e_asc


def qubit_density_matrix(x, y, z, trace=1.0) -> np.ndarray:
    """rho = (tr I + x sx + y sy + z sz)/2 in the basis (|e>, |g>), stacked over any leading axes."""
    x, y, z, tr = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, y, z, trace)))
    rho = np.empty(x.shape + (2, 2), dtype=complex)
    rho[..., 0, 0] = (tr + z) / 2
    rho[..., 1, 1] = (tr - z) / 2
    rho[..., 0, 1] = (x - 1j * y) / 2
    rho[..., 1, 0] = (x + 1j * y) / 2
    return rho
