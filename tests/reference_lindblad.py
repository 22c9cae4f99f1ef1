"""An independent Lindblad integrator for checking the engine: plain numpy + scipy, no QuTiP.

It shares nothing with ``qbcat`` but the physics of docs/conventions.md: it builds its own operators with
``numpy.kron`` (qubit first; excited state = index 0 = sz eigenvalue +1, ground = index 1;
``s+`` maps ground to excited), integrates

    d rho/dt = L_t(rho) = -i[H(t), rho] + sum_k (L_k rho L_k^dag - 1/2 {L_k^dag L_k, rho}),
    H(t) = omega_a/2 sz + omega_c a^dag a + g (s+ a + s- a^dag) + Omega sin(omega_d t) sx,
    L_k  = sqrt(gamma_D) sz, sqrt(kappa_1) a        (baseline: the qubit alone, sqrt(gamma_D) sz)

with ``scipy.integrate.solve_ivp`` (DOP853, tight tolerances) storing every state, and
evaluates each observable directly on the stored states: rho_QB by partial trace, ergotropy
from the eigenvalues, and the rates from L_t applied to the stored state (d rho/dt itself, not
the adjoint-Lindbladian shortcut the engine uses). The heat current's two channels are the
terms of L_t(rho) that carry them, applied to the stored state and traced against
h(t) = H_QB + s(t) sx on the full space: Tr[-i[H_int, rho] h] and gamma_D Tr[D[sz](rho) h].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

SX = np.array([[0, 1], [1, 0]], dtype=complex)
SY = np.array([[0, -1j], [1j, 0]], dtype=complex)
SZ = np.array([[1, 0], [0, -1]], dtype=complex)
SPLUS = np.array([[0, 1], [0, 0]], dtype=complex)  # |e><g| with |e> = index 0, |g> = index 1
KET = {
    "excited": np.array([1, 0], dtype=complex),
    "ground": np.array([0, 1], dtype=complex),
    "plus": np.array([1, 1], dtype=complex) / np.sqrt(2),
}


@dataclass
class Operators:
    """Everything on the full space (qubit (x) oscillator, or the qubit alone)."""

    n_cat: int  # oscillator dimension (1 for the baseline)
    H_static: np.ndarray  # H_QB + H_int + H_cat
    X: np.ndarray  # sx (x) 1, multiplied by s(t) = Omega sin(omega_d t)
    H_QB_full: np.ndarray
    H_int: np.ndarray
    H_cat: np.ndarray
    c_ops: list
    dephasing: np.ndarray  # sz (x) 1, the dephasing operator (rate gamma_D)
    rho0: np.ndarray


def destroy(n: int) -> np.ndarray:
    return np.diag(np.sqrt(np.arange(1, n, dtype=float)), k=1).astype(complex)


def build_operators(p: dict) -> Operators:
    """Operators for a parameter dict with the names of docs/conventions.md (all keys present)."""
    n = p["n_fock"] if p["catalyst"] else 1
    one_c = np.eye(n, dtype=complex)
    a = np.kron(np.eye(2), destroy(n)) if n > 1 else np.zeros((2, 2), dtype=complex)
    sz = np.kron(SZ, one_c)
    sp = np.kron(SPLUS, one_c)
    H_QB = 0.5 * p["omega_a"] * sz
    if p["catalyst"]:
        H_cat = p["omega_c"] * a.conj().T @ a
        H_int = p["g"] * (sp @ a + sp.conj().T @ a.conj().T)
        c_ops = [np.sqrt(p["gamma_D"]) * sz, np.sqrt(p["kappa_1"]) * a]
    else:
        H_cat = H_int = np.zeros_like(sz)
        c_ops = [np.sqrt(p["gamma_D"]) * sz]
    vac = np.zeros(n, dtype=complex)
    vac[0] = 1.0
    psi0 = np.kron(KET[p["initial_qubit"]], vac)
    return Operators(
        n_cat=n,
        H_static=H_QB + H_int + H_cat,
        X=np.kron(SX, one_c),
        H_QB_full=H_QB,
        H_int=H_int,
        H_cat=H_cat,
        c_ops=c_ops,
        dephasing=sz,
        rho0=np.outer(psi0, psi0.conj()),
    )


def drive(p: dict, t):
    """s(t) = Omega sin(omega_d t)."""
    return p["Omega"] * np.sin(p["omega_d"] * t)


def lindbladian(ops: Operators, p: dict, t: float, rho: np.ndarray) -> np.ndarray:
    """L_t(rho) = -i[H(t), rho] + sum_k D[L_k] rho, as matrices."""
    H = ops.H_static + drive(p, t) * ops.X
    out = -1j * (H @ rho - rho @ H)
    for L in ops.c_ops:
        Ld = L.conj().T
        LdL = Ld @ L
        out += L @ rho @ Ld - 0.5 * (LdL @ rho + rho @ LdL)
    return out


def partial_trace_cat(rho: np.ndarray, n_cat: int) -> np.ndarray:
    """Tr_cat rho for rho on C^2 (x) C^n_cat; works on stacks (..., 2n, 2n)."""
    r = rho.reshape(rho.shape[:-2] + (2, n_cat, 2, n_cat))
    return np.einsum("...ikjk->...ij", r)


def ergotropy(rho: np.ndarray, H: np.ndarray) -> float:
    """Tr[rho H] - sum_k r_k(descending) e_k(ascending)."""
    r = np.sort(np.linalg.eigvalsh(rho))[::-1]
    e = np.sort(np.linalg.eigvalsh(H))
    return float(np.trace(rho @ H).real - r @ e)


def integrate(p: dict, times: np.ndarray, rtol: float = 1e-11, atol: float = 1e-12) -> np.ndarray:
    """States rho(t) at ``times`` (array (n_t, d, d)) from DOP853 on the flattened matrix."""
    ops = build_operators(p)
    d = ops.rho0.shape[0]

    def rhs(t, y):
        return lindbladian(ops, p, t, y.reshape(d, d)).ravel()

    sol = solve_ivp(rhs, (times[0], times[-1]), ops.rho0.ravel(), method="DOP853",
                    t_eval=times, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"reference integration failed: {sol.message}")
    return sol.y.T.reshape(len(times), d, d)


def observables(p: dict, times: np.ndarray, states: np.ndarray) -> dict[str, np.ndarray]:
    """Every observable of docs/conventions.md, evaluated state by state from its definition."""
    ops = build_operators(p)
    H_QB = 0.5 * p["omega_a"] * SZ
    names = ["ergotropy", "energy_qb", "power", "heat_current", "net_flux", "internal_energy",
             "bloch_x", "bloch_y", "bloch_z", "trace", "energy_cat", "purity", "min_eigenvalue",
             "heat_current_catalyst", "heat_current_dephasing"]
    out = {k: np.empty(len(times)) for k in names}
    for i, (t, rho) in enumerate(zip(times, states)):
        s = drive(p, t)
        ds = p["Omega"] * p["omega_d"] * np.cos(p["omega_d"] * t)
        rho_qb = partial_trace_cat(rho, ops.n_cat)
        drho = lindbladian(ops, p, t, rho)  # d rho/dt at the stored state
        drho_qb = partial_trace_cat(drho, ops.n_cat)
        H_battery = H_QB + s * SX  # H_QB + H_drive(t) on the qubit
        H_0 = ops.H_QB_full + ops.H_int + s * ops.X
        out["ergotropy"][i] = ergotropy(rho_qb, H_QB)
        out["energy_qb"][i] = np.trace(rho_qb @ H_QB).real
        out["power"][i] = np.trace(rho @ (ds * ops.X)).real  # dH_0/dt = ds/dt sx (x) 1
        out["heat_current"][i] = np.trace(drho_qb @ H_battery).real
        out["net_flux"][i] = np.trace(drho @ H_0).real
        out["internal_energy"][i] = np.trace(rho_qb @ H_battery).real
        out["bloch_x"][i] = np.trace(rho_qb @ SX).real
        out["bloch_y"][i] = np.trace(rho_qb @ SY).real
        out["bloch_z"][i] = np.trace(rho_qb @ SZ).real
        out["trace"][i] = np.trace(rho).real
        out["energy_cat"][i] = np.trace(rho @ ops.H_cat).real
        out["purity"][i] = np.trace(rho @ rho).real
        h = ops.H_QB_full + s * ops.X  # the battery's Hamiltonian on the full space
        drho_int = -1j * (ops.H_int @ rho - rho @ ops.H_int)
        Z = ops.dephasing
        drho_deph = p["gamma_D"] * (Z @ rho @ Z - rho)  # D[sz] rho, sz^2 = 1
        out["heat_current_catalyst"][i] = np.trace(drho_int @ h).real
        out["heat_current_dephasing"][i] = np.trace(drho_deph @ h).real
        out["min_eigenvalue"][i] = np.linalg.eigvalsh(0.5 * (rho + rho.conj().T)).min()
    return out


def simulate(p: dict, rtol: float = 1e-11, atol: float = 1e-12) -> tuple[np.ndarray, dict, np.ndarray]:
    """(times, observables, states) on n_t points uniform on [0, t_max]."""
    times = np.linspace(0.0, p["t_max"], p["n_t"])
    states = integrate(p, times, rtol=rtol, atol=atol)
    return times, observables(p, times, states), states
