"""The batched engine: many points of one shape integrated together by a compiled Dormand-Prince 5(4).

Why: one QuTiP run per point sits on QuTiP's own floor (Python dispatch per right-hand side, one
point per call). The points of a sweep differ only in coefficients: the Lindbladian is linear in
the physics parameters,

    L_t = omega_a L_a + omega_c L_c + g L_g + gamma_D L_D + kappa_1 L_k + s(t) L_x,
    L_a = -i[sz/2, .],  L_c = -i[a^dag a, .],  L_g = -i[s+ a + s- a^dag, .],
    L_D = D[sz],  L_k = D[a],  L_x = -i[sx, .],  s(t) = Omega sin(omega_d t),

with structure superoperators that depend only on (catalyst, n_fock). They are taken from
:func:`qbcat.engine.model.operators` at unit parameters, so the physics stays in one place; a test
checks the kernel against ``qutip.liouvillian`` at random points.

Rotating frame (exact, no rotating-wave approximation): the engine integrates
rho_I = exp(i H0 t) rho exp(-i H0 t), H0 = H_QB + H_cat = omega_a L_a + omega_c L_c's
Hamiltonian, which is diagonal. Element (i, j) of rho rotates as exp(-i (E_i - E_j) t), up to
(n_fock - 1) omega_c for photon coherences; the frame takes that rotation out, so the step
size follows the slow physics (coupling, drive, damping) instead: 5x fewer steps at n_fock 12
(benchmarks/README.md). The price is a phase exp(i (alpha omega_a + beta omega_c) t) on each
coupling (a handful of distinct "channels"), and observables that are put back into the lab
frame at the output times.

Data layout (the kernel's reason to be fast): rho is Hermitian, so only its upper triangle
(i <= j, D' = d(d+1)/2 complex numbers) is integrated; an element below the diagonal is read as
the conjugate of its mirror. The batch's points are the innermost (contiguous) axis of every
array, ``X[r, lane]``, so every operation of the right-hand side is one SIMD loop over points.
The right-hand side is, per element r,

    dX_r = Dg_r X_r + sum_q C_{ch_q}(t) * M_q (X_{c_q} or conj X_{c_q}),

with Dg the per-point diagonal of the dissipators, M_q a real 2x2 matrix acting on (Re, Im) and
C_ch(t) the channel's complex coefficient (g, kappa_1 or s(t), times its phase). At n_fock 12
that is about 16 kflop per point. Every M_q of this model is a complex number v acting on X_c
or on conj X_c (:func:`structure` checks it and refuses a structure where it is not), so the
kernel folds C_ch v into per-lane weights W_u, one per distinct (channel, v) (108 at n_fock 12
for 1403 couplings), once per right-hand side: then a coupling costs 4 FMAs per lane instead
of 8 (:func:`_rhs`, checked against QuTiP).

Kernel, for speed (benchmarks/README.md): the step is bound by the bytes it moves (the stage
combinations stream all the stages), so every pass is a long SIMD loop over lanes or over
(element, lane). An element's sum over its couplings is accumulated for a block of lanes in a
stack buffer, five couplings per SIMD loop over the lanes (a loop over 64 lanes that stores
into argument arrays while reading others gets run-time overlap checks from LLVM that cost as
much as the work; a stack buffer aliases nothing). The stages are stored scaled by their lane's
step, K~_j = h f_j, so a stage combination X + sum_j a_j K~_j has the same coefficients in
every lane and runs as one flat loop over (element, lane) that stores straight into its
output (one overlap check per call); so do the 5th-order solution and the stages' part of the
error estimate (one loop per output). A call takes few enough lanes that a step's arrays stay near
the L2 cache (:func:`lanes_for`). Fusing the combinations into the right-hand side's row loop
was slower (LLVM compiled the bigger loop nest worse), so the passes stay separate.

Time stepping: Dormand-Prince 5(4) (the tableau and dense output of scipy's RK45), FSAL, with
each point ("lane") on its OWN step size and time: a hard point never loosens or slows the
error control of the others, and a point gives bitwise the same result in any batch (no
cross-lane arithmetic; only FMA contraction, the same in every lane). Error control per point: a
step is accepted when

    sqrt( mean_r |e_r|^2 / (atol + rtol max(|X_r|, |X_r_new|))^2 ) <= 1,

the weighted RMS norm of the local error estimate e over the independent elements of rho
(the norm of scipy's RK45 and of QuTiP's ODE solvers; |rho_I| = |rho| element by element, so
the frame does not change what the tolerances mean). Outputs are at exactly the requested
times, from the method's 4th-order continuous extension applied to the observables (they are
linear in rho, so interpolating <A> is interpolating rho): no step is shortened to hit an
output time.

Observables: the engine computes <A>(t) for exactly the operators of
:func:`qbcat.engine.solve.expect_operators` (time-independent, Hermitian) and hands them to the same
:func:`qbcat.engine.solve.observables_from_expect` as the QuTiP engine, so both engines produce the same
variables by construction.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# ---------------------------------------------------------------------------------------------
# Dormand-Prince 5(4) (scipy.integrate.RK45's coefficients, Shampine's dense output)

_C = np.array([0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0])
_A = np.array([
    [0, 0, 0, 0, 0],
    [1 / 5, 0, 0, 0, 0],
    [3 / 40, 9 / 40, 0, 0, 0],
    [44 / 45, -56 / 15, 32 / 9, 0, 0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
])
_B = np.array([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0])
_E = np.array([-71 / 57600, 0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40])
_P = np.array([
    [1, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
    [0, 0, 0, 0],
    [0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
    [0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
    [0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632],
    [0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
    [0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
])
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0
assert _B[1] == 0 and _E[1] == 0  # _solution does not read stage 2

#: Lane status codes returned by the kernel.
OK, STEP_UNDERFLOW, TOO_MANY_STEPS, NON_FINITE = 0, 1, 2, 3
STATUS_TEXT = {
    STEP_UNDERFLOW: "step size underflow (the step fell below 1e-14 of the time)",
    TOO_MANY_STEPS: "more than nsteps integrator steps between two output times",
    NON_FINITE: "non-finite values in the state",
}

#: The coefficients of the static structure superoperators, in order (see module docstring).
COEFFICIENTS = {True: ("omega_a", "omega_c", "g", "gamma_D", "kappa_1"), False: ("omega_a", "gamma_D")}


# ---------------------------------------------------------------------------------------------
# Structure: the Liouvillian of one (catalyst, n_fock) on the upper triangle of rho


@dataclass(frozen=True)
class Structure:
    """Sparse pieces of L_t in the rotating frame, on the upper-triangle vector of rho.

    The state is rho_I = exp(i H0 t) rho exp(-i H0 t), H0 = H_QB + H_cat (diagonal, energies
    E_i = omega_a/2 sz_i + omega_c n_i), so element r = (i, j) is rho_r exp(i Delta_r t) with
    Delta_r = E_i - E_j = alpha_r omega_a + beta_r omega_c. In that frame the free rotation is
    gone: an entry of the Lindbladian coupling element r to element (k, l) picks up the phase
    exp(i (Delta_ij - Delta_kl) t) (zero for the dissipators, which commute with H0's rotation).

    ``diag[k, r]``: diagonal of the static dissipative piece k (the frame pieces omega_a,
    omega_c have none left; real for this model's dissipators, checked); couplings in CSR order
    over r: element r receives W_u x or W_u conj(x) (``conj[q]`` = +1 or -1, the sign of Im x)
    of element x = col[q], u = weight[q], with W_u = C_ch v_u for the channel ch = w_ch[u] and the complex number
    v_u = w_v[u]; C_ch = coef[ch_k] exp(i (ch_alpha omega_a + ch_beta omega_c) t) is the
    channel's complex coefficient, coef[len(names)] being the drive s(t). Every entry of this
    model's Lindbladian has that form (:func:`structure` checks it): a coupling costs 4 FMAs
    a lane, and the few distinct W_u are formed once per right-hand side.
    """

    catalyst: bool
    dim: int  # d, the Hilbert-space dimension
    names: tuple  # static coefficient names
    upper: np.ndarray  # (d, d) -> index r of element (i, j), i <= j; -1 below the diagonal
    rows: np.ndarray  # (D', 2) (i, j) of element r
    is_diag: np.ndarray  # (D',) bool
    alpha: np.ndarray  # (D',) int: Delta_r = alpha_r omega_a + beta_r omega_c
    beta: np.ndarray
    diag: np.ndarray  # (K, D') float
    ptr: np.ndarray  # (D' + 1,) int64
    col: np.ndarray  # (nnz,) int64
    weight: np.ndarray  # (nnz,) int64: the weight u of each coupling
    conj: np.ndarray  # (nnz,) float: +1 (W_u x) or -1 (W_u conj x)
    w_ch: np.ndarray  # (n_u,) int64: the channel of weight u
    w_v: np.ndarray  # (n_u,) complex: W_u = C_ch v_u
    ch_k: np.ndarray  # (n_ch,) int64: the coefficient of each channel
    ch_alpha: np.ndarray  # (n_ch,) int64
    ch_beta: np.ndarray  # (n_ch,) int64

    @property
    def size(self) -> int:
        return len(self.rows)

    @property
    def couplings(self) -> int:
        """Off-diagonal entries."""
        return len(self.col)

    def to_upper(self, rho: np.ndarray) -> np.ndarray:
        """Upper triangle of a d x d matrix as the engine's complex vector."""
        return rho[self.rows[:, 0], self.rows[:, 1]]

    def expect_weights(self, A: np.ndarray) -> np.ndarray:
        """Complex weights w with <A> = Re(sum_r conj(w_r) rho_r) for Hermitian A (d x d, or a
        stack of them: (..., d, d) -> (..., D')).

        <A> = Tr[A rho] = sum_i A_ii rho_ii + sum_{i<j} 2 Re(A_ji rho_ij).
        """
        i, j = self.rows[:, 0], self.rows[:, 1]
        a, a_up = A[..., j, i], A[..., i, j]  # the lower and upper triangles, element by element
        scale = np.maximum(1.0, np.maximum(np.abs(a).max(axis=-1), np.abs(a_up).max(axis=-1)))
        if np.any(np.abs(a - a_up.conj()).max(axis=-1) > 1e-12 * scale):
            raise ValueError("expectation operator is not Hermitian")
        factor = np.where(self.is_diag, 1.0, 2.0)
        return factor * a.conj()


#: The static pieces that define the rotating frame (H0 = H_QB + H_cat): diagonal, so they only
#: rotate the elements of rho, which the frame takes out.
FRAME = ("omega_a", "omega_c")


def _superoperators(model, unit: dict) -> list:
    """Row-major vectorised superoperators (sparse d^2 x d^2) of each structure piece, then drive."""
    import scipy.sparse as sp

    def full(op):
        return sp.csr_matrix(op)

    d = model.sx.shape[0]
    eye = sp.identity(d, dtype=complex, format="csr")

    def comm(H):  # -i[H, .] on vec_row(rho): vec_row(A rho B) = (A (x) B^T) vec_row(rho)
        return (-1j * (sp.kron(H, eye) - sp.kron(eye, H.T))).tocsr()

    def dissipator(L):
        LdL = L.conj().T @ L
        return (sp.kron(L, L.conj()) - 0.5 * sp.kron(LdL, eye) - 0.5 * sp.kron(eye, LdL.T)).tocsr()

    pieces = [comm(full(model.H_QB) / unit["omega_a"])]
    if model.catalyst:
        pieces += [comm(full(model.H_cat) / unit["omega_c"]), comm(full(model.H_int) / unit["g"])]
    pieces.append(dissipator(full(model.c_ops[0]) / math.sqrt(unit["gamma_D"])))
    if model.catalyst:
        pieces.append(dissipator(full(model.c_ops[1]) / math.sqrt(unit["kappa_1"])))
    pieces.append(comm(full(model.drive_op)))
    return pieces


_STRUCTURES: dict = {}


def structure(catalyst: bool, n_fock: int) -> Structure:
    """The Structure of (catalyst, n_fock), built once per process from the model at unit
    coefficients (qbcat.engine.model.operators)."""
    key = (bool(catalyst), int(n_fock) if catalyst else 0)
    if key in _STRUCTURES:
        return _STRUCTURES[key]
    from .model import operators
    from .params import validate

    unit = {"omega_a": 1.0, "omega_c": 1.0, "g": 1.0, "gamma_D": 1.0, "kappa_1": 1.0}
    model = operators(validate({**unit, "Omega": 1.0, "catalyst": catalyst,
                                  **({"n_fock": n_fock} if catalyst else {})}))
    names = COEFFICIENTS[bool(catalyst)]
    supers = _superoperators(model, unit)
    d = model.sx.shape[0]
    # energies of H0 in units of (omega_a, omega_c): E_i = a_i omega_a + b_i omega_c
    a_lvl = np.rint(np.real(np.diag(model.H_QB)) * 2).astype(np.int64)  # sz_i = +-1 -> E = +-1/2
    b_lvl = np.rint(np.real(np.diag(model.H_cat))).astype(np.int64)  # photon number
    iu, ju = np.triu_indices(d)
    upper = -np.ones((d, d), dtype=np.int64)
    upper[iu, ju] = np.arange(len(iu))
    rows = np.stack([iu, ju], axis=1).astype(np.int64)
    n_static = len(supers) - 1
    diag = np.zeros((n_static, len(iu)), dtype=complex)
    entries: dict = {}  # (r, c, channel) -> 2x2
    channels: dict = {}  # (k, alpha2, beta) -> index
    for k, S in enumerate(supers):
        S.eliminate_zeros()
        frame = k < n_static and names[k] in FRAME
        for r, (i, j) in enumerate(rows):
            lo, hi = S.indptr[i * d + j], S.indptr[i * d + j + 1]
            for flat, v in zip(S.indices[lo:hi], S.data[lo:hi]):
                kk, ll = divmod(int(flat), d)
                if frame:  # -i[H0, .] is diagonal: the frame removes it
                    if (kk, ll) != (i, j):
                        raise ValueError(f"frame piece {names[k]} is not diagonal")
                    continue
                # phase of this entry in the frame: Delta_ij - Delta_kl (2 alpha, to stay integer)
                alpha2 = a_lvl[i] - a_lvl[j] - a_lvl[kk] + a_lvl[ll]
                beta = b_lvl[i] - b_lvl[j] - b_lvl[kk] + b_lvl[ll]
                if kk <= ll:
                    c, mat = upper[kk, ll], np.array([[v.real, -v.imag], [v.imag, v.real]])
                else:
                    c, mat = upper[ll, kk], np.array([[v.real, v.imag], [v.imag, -v.real]])
                if c == r and kk <= ll and k < n_static:
                    if alpha2 or beta:
                        raise ValueError("a diagonal entry with a phase")
                    diag[k, r] += v
                    continue
                ch = channels.setdefault((k, int(alpha2), int(beta)), len(channels))
                entries[(r, c, ch)] = entries.get((r, c, ch), 0) + mat
    if any(a2 % 2 for _, a2, _ in channels):
        raise ValueError("odd multiple of omega_a/2 in a phase")
    keys = sorted(k for k, mat in entries.items() if np.any(mat != 0))
    ptr = np.zeros(len(iu) + 1, dtype=np.int64)
    for r, _, _ in keys:
        ptr[r + 1] += 1
    chans = sorted(channels, key=channels.get)
    # fold each coupling's 2x2 matrix into a complex v acting on x or on conj(x)
    weights: dict = {}  # (channel, v) -> u
    weight, conj = [], []
    for entry in keys:
        (m00, m01), (m10, m11) = entries[entry]
        if m11 == m00 and m01 == -m10:
            conj.append(1.0)
        elif m11 == -m00 and m01 == m10:
            conj.append(-1.0)
        else:
            raise ValueError(f"coupling {entry} (element, element, channel) is neither v x nor v conj(x)")
        weight.append(weights.setdefault((entry[2], complex(m00, m10)), len(weights)))
    if np.any(diag.imag != 0):
        raise ValueError("a dissipator's diagonal has an imaginary part (the kernel takes it real)")
    st = Structure(
        catalyst=bool(catalyst), dim=d, names=names, upper=upper, rows=rows, is_diag=iu == ju,
        alpha=(a_lvl[iu] - a_lvl[ju]) // 2, beta=b_lvl[iu] - b_lvl[ju], diag=diag.real.copy(),
        ptr=np.cumsum(ptr), col=np.array([c for _, c, _ in keys], dtype=np.int64),
        weight=np.array(weight, dtype=np.int64), conj=np.array(conj, dtype=float),
        w_ch=np.array([ch for ch, _ in weights], dtype=np.int64),
        w_v=np.array([v for _, v in weights], dtype=complex),
        ch_k=np.array([k for k, _, _ in chans], dtype=np.int64),
        ch_alpha=np.array([a2 // 2 for _, a2, _ in chans], dtype=np.int64),
        ch_beta=np.array([b for _, _, b in chans], dtype=np.int64),
    )
    _STRUCTURES[key] = st
    return st


# ---------------------------------------------------------------------------------------------
# The compiled kernel
#
# Every loop nest ends in a loop over the lanes b (contiguous), so that it compiles to SIMD
# instructions; indices read from arrays are cast to unsigned so that numba emits no
# negative-index wrap-around, which would keep LLVM from vectorising. "contract" lets LLVM fuse
# a*b + c into one FMA: the same operations in every lane, so a point's result does not depend
# on its batch.

_JIT = dict(cache=True, fastmath={"contract"})

#: Lanes per block of the kernel's stack accumulators (see :func:`_stack`).
_LB = 64


@intrinsic
def _stack(typingctx, n):
    """Pointer to a float64 buffer of ``n`` (a literal) elements on the stack.

    Why: a loop over lanes that stores into an argument array while reading others gets
    run-time overlap checks from LLVM before it may use SIMD (measured: ~50 instructions per
    loop, as much as the work of a 64-lane loop). A stack buffer provably aliases nothing, so
    loops that accumulate into it vectorise without checks; the result is copied out once.
    """
    if not isinstance(n, types.IntegerLiteral):
        return None

    def codegen(context, builder, sig, args):
        return cgutils.alloca_once(builder, context.get_value_type(types.float64), size=n.literal_value)

    return types.CPointer(types.float64)(n), codegen


@njit(**_JIT)
def _coefficients(ts, coef, Omega, omega_d, omega_a, omega_c, ch_k, ch_alpha, ch_beta, cr, ci):
    """The complex channel coefficients C_ch at each lane's time: coef[k] (s(t) for the drive)
    times exp(i (alpha omega_a + beta omega_c) t). A channel whose phase is the opposite of an
    earlier one's (same k) is its conjugate, and a channel without phase is real: sin and cos
    only for the others (cos is even and sin odd, so the values are the same)."""
    nl = ts.shape[0]
    kd = coef.shape[0] - 1
    for b in range(nl):
        coef[kd, b] = Omega[b] * math.sin(omega_d[b] * ts[b])
    for ch in range(ch_k.shape[0]):
        k = ch_k[ch]
        al = ch_alpha[ch]
        be = ch_beta[ch]
        mirror = -1
        for other in range(ch):
            if ch_k[other] == k and ch_alpha[other] == -al and ch_beta[other] == -be:
                mirror = other
        if mirror >= 0:
            for b in range(nl):
                cr[ch, b] = cr[mirror, b]
                ci[ch, b] = -ci[mirror, b]
        elif al == 0 and be == 0:
            for b in range(nl):
                cr[ch, b] = coef[k, b]
                ci[ch, b] = 0.0
        else:
            for b in range(nl):
                phi = (al * omega_a[b] + be * omega_c[b]) * ts[b]
                cr[ch, b] = coef[k, b] * math.cos(phi)
                ci[ch, b] = coef[k, b] * math.sin(phi)


@njit(**_JIT)
def _weights(cr, ci, w_ch, w_vr, w_vi, Wr, Wi):
    """W_u = C_ch(u) v_u for every lane (complex product; Structure.w_ch, w_v)."""
    nl = cr.shape[1]
    for u in range(w_ch.shape[0]):
        k = w_ch[u]
        vr = w_vr[u]
        vi = w_vi[u]
        for b in range(nl):
            Wr[u, b] = cr[k, b] * vr - ci[k, b] * vi
            Wi[u, b] = cr[k, b] * vi + ci[k, b] * vr


@njit(cache=True, fastmath={"contract"}, inline="always")
def _couple(sr, si, xr, xi, wr, wi):
    """(sr, si) + W x for one coupling (xi already carries the sign of a conjugate)."""
    return sr + wr * xr - wi * xi, si + wr * xi + wi * xr


@njit(**_JIT)
def _rhs(Xr, Xi, Yr, Yi, dg, is_diag, ptr, col, wu, sgn, Wr, Wi, hs):
    """Y = hs L_t(X) in the rotating frame, lane b scaled by hs[b] (its step size, or 1), with
    dg the (real) diagonal of the dissipators and the per-lane weights W of :func:`_weights`
    (element r receives W_u x or W_u conj(x) from each coupling, :class:`Structure`): 4 FMAs a
    coupling and lane.

    Element r of a block of lanes is accumulated in a stack buffer (no run-time overlap
    checks, see :func:`_stack`) over its couplings in CSR order, five (then two, then one)
    couplings per SIMD loop over the lanes (most elements have five), so the accumulators stay
    in registers across them and a loop's set-up is paid once per element; the element is
    stored once. The order of the additions is fixed by the structure, the same in every lane.
    """
    D, nl = Xr.shape
    ar = carray(_stack(_LB), (_LB,))
    ai = carray(_stack(_LB), (_LB,))
    for b0 in range(0, nl, _LB):
        w = min(nl - b0, _LB)
        for r0 in range(D):
            r = np.uint64(r0)
            for b in range(w):
                lb = np.uint64(b0 + b)
                ar[b] = dg[r, lb] * Xr[r, lb]
                ai[b] = dg[r, lb] * Xi[r, lb]
            q = ptr[r]
            q1 = ptr[r + 1]
            while q + 5 <= q1:
                c0 = np.uint64(col[q])
                c1 = np.uint64(col[q + 1])
                c2 = np.uint64(col[q + 2])
                c3 = np.uint64(col[q + 3])
                c4 = np.uint64(col[q + 4])
                u0 = np.uint64(wu[q])
                u1 = np.uint64(wu[q + 1])
                u2 = np.uint64(wu[q + 2])
                u3 = np.uint64(wu[q + 3])
                u4 = np.uint64(wu[q + 4])
                s0 = sgn[q]
                s1 = sgn[q + 1]
                s2 = sgn[q + 2]
                s3 = sgn[q + 3]
                s4 = sgn[q + 4]
                for b in range(w):
                    lb = np.uint64(b0 + b)
                    sr, si = _couple(ar[b], ai[b], Xr[c0, lb], s0 * Xi[c0, lb], Wr[u0, lb], Wi[u0, lb])
                    sr, si = _couple(sr, si, Xr[c1, lb], s1 * Xi[c1, lb], Wr[u1, lb], Wi[u1, lb])
                    sr, si = _couple(sr, si, Xr[c2, lb], s2 * Xi[c2, lb], Wr[u2, lb], Wi[u2, lb])
                    sr, si = _couple(sr, si, Xr[c3, lb], s3 * Xi[c3, lb], Wr[u3, lb], Wi[u3, lb])
                    sr, si = _couple(sr, si, Xr[c4, lb], s4 * Xi[c4, lb], Wr[u4, lb], Wi[u4, lb])
                    ar[b] = sr
                    ai[b] = si
                q += 5
            while q + 2 <= q1:
                c0 = np.uint64(col[q])
                c1 = np.uint64(col[q + 1])
                u0 = np.uint64(wu[q])
                u1 = np.uint64(wu[q + 1])
                s0 = sgn[q]
                s1 = sgn[q + 1]
                for b in range(w):
                    lb = np.uint64(b0 + b)
                    sr, si = _couple(ar[b], ai[b], Xr[c0, lb], s0 * Xi[c0, lb], Wr[u0, lb], Wi[u0, lb])
                    sr, si = _couple(sr, si, Xr[c1, lb], s1 * Xi[c1, lb], Wr[u1, lb], Wi[u1, lb])
                    ar[b] = sr
                    ai[b] = si
                q += 2
            if q < q1:
                c0 = np.uint64(col[q])
                u0 = np.uint64(wu[q])
                s0 = sgn[q]
                for b in range(w):
                    lb = np.uint64(b0 + b)
                    sr, si = _couple(ar[b], ai[b], Xr[c0, lb], s0 * Xi[c0, lb], Wr[u0, lb], Wi[u0, lb])
                    ar[b] = sr
                    ai[b] = si
            if is_diag[r]:
                for b in range(w):
                    ai[b] = 0.0
            for b in range(w):
                lb = np.uint64(b0 + b)
                Yr[r, lb] = hs[lb] * ar[b]
                Yi[r, lb] = hs[lb] * ai[b]


@njit(**_JIT)
def _expect(Xr, Xi, optr, orow, owr, owi, oshared, outr, outi):
    """S_g = sum_r conj(w_r) x_r over the entries of group g (one observable, one frequency):
    outr, outi[g, b] its real and imaginary parts for lane b. An entry whose weight is the same
    in every lane (oshared) reads it once, not once per lane (half the bytes of the entry)."""
    nl = Xr.shape[1]
    sr = carray(_stack(_LB), (_LB,))
    si = carray(_stack(_LB), (_LB,))
    for b0 in range(0, nl, _LB):
        w = min(nl - b0, _LB)
        for g in range(outr.shape[0]):
            for b in range(w):
                sr[b] = 0.0
                si[b] = 0.0
            for q0 in range(optr[g], optr[g + 1]):
                q = np.uint64(q0)
                r = np.uint64(orow[q])
                if oshared[q]:
                    wr = owr[q, 0]
                    wi = owi[q, 0]
                    for b in range(w):
                        lb = np.uint64(b0 + b)
                        sr[b] = sr[b] + wr * Xr[r, lb] + wi * Xi[r, lb]
                        si[b] = si[b] + wr * Xi[r, lb] - wi * Xr[r, lb]
                    continue
                for b in range(w):
                    lb = np.uint64(b0 + b)
                    sr[b] = sr[b] + owr[q, lb] * Xr[r, lb] + owi[q, lb] * Xi[r, lb]
                    si[b] = si[b] + owr[q, lb] * Xi[r, lb] - owi[q, lb] * Xr[r, lb]
            for b in range(w):
                lb = np.uint64(b0 + b)
                outr[g, lb] = sr[b]
                outi[g, lb] = si[b]


@njit(**_JIT)
def _combine(x, k, kidx, a, n, y):
    """y = x + sum_{j<n} a[j] k[kidx[j]] (1 <= n <= 5) on flat vectors: one part (real or
    imaginary) of a stage's input, x the state and k the stages, all (element, lane) flattened.

    The stages are scaled by their lane's step (K~ = h f, :func:`_rhs`), so the coefficients
    are the same in every lane and the arrays are walked as one flat loop that stores straight
    into y: LLVM's run-time overlap checks are paid once per call, not per row.
    """
    T = x.shape[0]
    k0 = k[kidx[0]]
    a0 = a[0]
    if n == 1:
        for i in range(T):
            y[i] = x[i] + a0 * k0[i]
        return
    k1 = k[kidx[1]]
    a1 = a[1]
    if n == 2:
        for i in range(T):
            y[i] = x[i] + a0 * k0[i] + a1 * k1[i]
        return
    k2 = k[kidx[2]]
    a2 = a[2]
    if n == 3:
        for i in range(T):
            y[i] = x[i] + a0 * k0[i] + a1 * k1[i] + a2 * k2[i]
        return
    k3 = k[kidx[3]]
    a3 = a[3]
    if n == 4:
        for i in range(T):
            y[i] = x[i] + a0 * k0[i] + a1 * k1[i] + a2 * k2[i] + a3 * k3[i]
        return
    k4 = k[kidx[4]]
    a4 = a[4]
    for i in range(T):
        y[i] = x[i] + a0 * k0[i] + a1 * k1[i] + a2 * k2[i] + a3 * k3[i] + a4 * k4[i]


@njit(**_JIT)
def _sum6(x, k0, k2, k3, k4, k5, b0, b2, b3, b4, b5, y):
    """y = x + b0 k0 + b2 k2 + b3 k3 + b4 k4 + b5 k5 on flat vectors (one output: one overlap check)."""
    for i in range(x.shape[0]):
        y[i] = x[i] + b0 * k0[i] + b2 * k2[i] + b3 * k3[i] + b4 * k4[i] + b5 * k5[i]


@njit(**_JIT)
def _sum5(k0, k2, k3, k4, k5, c0, c2, c3, c4, c5, y):
    """y = c0 k0 + c2 k2 + c3 k3 + c4 k4 + c5 k5 on flat vectors."""
    for i in range(k0.shape[0]):
        y[i] = c0 * k0[i] + c2 * k2[i] + c3 * k3[i] + c4 * k4[i] + c5 * k5[i]


@njit(**_JIT)
def _solution(Xr, Xi, Kr, Ki, kidx, b, c, Nr, Ni, Er, Ei):
    """The 5th-order solution N = X + sum_{j<6} b[j] K~[kidx[j]] and the stages' part of the
    error estimate E = sum_{j<6} c[j] K~[kidx[j]] (b[1] = c[1] = 0 for Dormand-Prince: stage 2
    is not read), as four flat loops with one output each: each runs at the speed of
    :func:`_combine` (measured: 34 us against 49 us for one fused pass with four outputs through
    stack buffers, at n_fock 12 and 32 lanes, bit for bit the same numbers)."""
    D, nl = Xr.shape
    T = D * nl
    kr = Kr.reshape(Kr.shape[0], T)
    ki = Ki.reshape(Ki.shape[0], T)
    _sum6(Xr.reshape(T), kr[kidx[0]], kr[kidx[2]], kr[kidx[3]], kr[kidx[4]], kr[kidx[5]], b[0], b[2], b[3], b[4],
          b[5], Nr.reshape(T))
    _sum6(Xi.reshape(T), ki[kidx[0]], ki[kidx[2]], ki[kidx[3]], ki[kidx[4]], ki[kidx[5]], b[0], b[2], b[3], b[4],
          b[5], Ni.reshape(T))
    _sum5(kr[kidx[0]], kr[kidx[2]], kr[kidx[3]], kr[kidx[4]], kr[kidx[5]], c[0], c[2], c[3], c[4], c[5],
          Er.reshape(T))
    _sum5(ki[kidx[0]], ki[kidx[2]], ki[kidx[3]], ki[kidx[4]], ki[kidx[5]], c[0], c[2], c[3], c[4], c[5],
          Ei.reshape(T))


@njit(**_JIT)
def _error_norm_h(Xr, Xi, Nr, Ni, Er, Ei, Gr, Gi, e_last, h, atol, rtol, err):
    """err[b] = weighted RMS norm of lane b's local error estimate e = E + e_last h G, with E the
    part from the scaled stages (:func:`_solution`) and G = f(t + h, N) the unscaled last stage."""
    D, nl = Xr.shape
    acc = carray(_stack(_LB), (_LB,))
    for b0 in range(0, nl, _LB):
        w = min(nl - b0, _LB)
        for b in range(w):
            acc[b] = 0.0
        for r0 in range(D):
            r = np.uint64(r0)
            for b in range(w):
                lb = np.uint64(b0 + b)
                eh = e_last * h[lb]
                er = Er[r, lb] + eh * Gr[r, lb]
                ei = Ei[r, lb] + eh * Gi[r, lb]
                y0 = Xr[r, lb] * Xr[r, lb] + Xi[r, lb] * Xi[r, lb]
                y1 = Nr[r, lb] * Nr[r, lb] + Ni[r, lb] * Ni[r, lb]
                sc = atol[lb] + rtol[lb] * math.sqrt(max(y0, y1))
                acc[b] = acc[b] + (er * er + ei * ei) / (sc * sc)
        for b in range(w):
            lb = np.uint64(b0 + b)
            err[lb] = math.sqrt(acc[b] / D)


@njit(**_JIT)
def _advance(Xr, Xi, Nr, Ni, Kr, Ki, slot, accept):
    """Accepted lanes move on: X <- X_new and K_0 <- K_6 (first same as last)."""
    D, nl = Xr.shape
    s0 = slot[0]
    s6 = slot[6]
    for r in range(D):
        for b in range(nl):
            if accept[b]:
                Xr[r, b] = Nr[r, b]
                Xi[r, b] = Ni[r, b]
                Kr[s0, r, b] = Kr[s6, r, b]
                Ki[s0, r, b] = Ki[s6, r, b]


@njit(**_JIT)
def _scale_lanes(F, h):
    """F *= h lane by lane, in place (one array: a single overlap check per row)."""
    D, nl = F.shape
    for r in range(D):
        for b in range(nl):
            F[r, b] = h[b] * F[r, b]


@njit(**_JIT)
def _stage(ts, hs, Xr, Xi, Yr, Yi, dg, is_diag, ptr, col, wu, sgn, w_ch, w_vr, w_vi, Wr, Wi, coef, Omega,
           omega_d, omega_a, omega_c, ch_k, ch_alpha, ch_beta, cr, ci):
    """One right-hand side scaled by hs: the channel coefficients and weights at the lanes'
    times ``ts``, then Y = hs L_t(X) (:func:`_rhs`)."""
    _coefficients(ts, coef, Omega, omega_d, omega_a, omega_c, ch_k, ch_alpha, ch_beta, cr, ci)
    _weights(cr, ci, w_ch, w_vr, w_vi, Wr, Wi)
    _rhs(Xr, Xi, Yr, Yi, dg, is_diag, ptr, col, wu, sgn, Wr, Wi, hs)


@njit(**_JIT)
def _integrate(X0r, X0i, dg_all, is_diag, ptr, col, wu, sgn, w_ch, w_vr, w_vi, coef_all, Omega_all, omega_d_all,
               omega_a_all, omega_c_all, ch_k, ch_alpha, ch_beta, optr, orow, owr_all, owi_all, oshared, gobs, galpha,
               gbeta, t_out, atol_all, rtol_all, max_step_all, nsteps_all, h0, A, Bw, Cc, E, P, out, status, n_steps,
               n_rejected, nl):
    """Integrate every point p (column p of the ``*_all`` arrays, initial state X0[:, p]) from
    t_out[0] to t_out[-1] on ``nl`` lanes; out[p, m, n] = <A_m>(t_out[n]).

    Lanes are refilled: the points are a queue, lane b integrates point pt[b], and a lane whose
    point is done (or failed) takes the next point of the queue at once. A call then runs as
    long as its points' total work divided by the lanes, plus one point's worth at the end,
    instead of every chunk of nl points as long as its slowest point (measured on a 100 x 100
    map: 27 % of the lane-steps were idle lanes; benchmarks/README.md). A lane's arithmetic
    reads only its own column, so a point's result does not depend on its lane, its neighbours
    or the queue.

    Observables come in groups g (observable gobs[g], frequency galpha[g] omega_a + gbeta[g]
    omega_c): <A_m>(t) = sum over its groups of Re(exp(-i omega_g t) S_g(t)), S_g linear in the
    rotating-frame state, so S_g is interpolated by the continuous extension like the state.
    """
    D, n_pts = X0r.shape
    n_g = gobs.shape[0]
    n_obs = out.shape[1]
    n_t = t_out.shape[0]
    n_ch = ch_k.shape[0]
    n_coef = coef_all.shape[0]
    n_ent = owr_all.shape[0]
    # the lanes' own copies of their points' data
    Xr = np.zeros((D, nl))
    Xi = np.zeros((D, nl))
    dg = np.zeros((D, nl))
    coef = np.zeros((n_coef, nl))
    owr = np.zeros((n_ent, nl))
    owi = np.zeros((n_ent, nl))
    Omega = np.zeros(nl)
    omega_d = np.zeros(nl)
    omega_a = np.zeros(nl)
    omega_c = np.zeros(nl)
    atol = np.ones(nl)
    rtol = np.ones(nl)
    max_step = np.zeros(nl)
    nsteps = np.ones(nl, dtype=np.int64)
    pt = np.full(nl, -1, dtype=np.int64)  # the point of each lane
    fresh = np.zeros(nl, dtype=np.bool_)  # lanes just given a point: initial observables and F due
    # The stages of a step are scaled by the lane's step, K~_j = h f_j, so that the stage
    # combinations are flat (_combine, _solution): K~_j in K[kidx[j]]. K[slot[0]] holds F = f(t, X)
    # times scale0 (per lane: 1 when it was made, h once scaled in place to K~_1); K[slot[6]]
    # holds G = f(t + h, N), unscaled (FSAL: a swap when every lane accepts).
    Kr = np.zeros((7, D, nl))
    Ki = np.zeros((7, D, nl))
    slot = np.arange(7)
    kidx = np.arange(6)
    ones = np.ones(nl)
    scale0 = np.ones(nl)
    Wr = np.empty((w_ch.shape[0], nl))
    Wi = np.empty((w_ch.shape[0], nl))
    okFr = np.empty((n_g, nl))
    okFi = np.empty((n_g, nl))
    okGr = np.empty((n_g, nl))
    okGi = np.empty((n_g, nl))
    Yr = np.zeros((D, nl))
    Yi = np.zeros((D, nl))
    Nr = np.zeros((D, nl))
    Ni = np.zeros((D, nl))
    cr = np.empty((n_ch, nl))
    ci = np.empty((n_ch, nl))
    okr = np.zeros((7, n_g, nl))
    oki = np.zeros((7, n_g, nl))
    obs_yr = np.empty((n_g, nl))
    obs_yi = np.empty((n_g, nl))
    obs_nr = np.empty((n_g, nl))
    obs_ni = np.empty((n_g, nl))
    err = np.empty(nl)
    sr = np.empty(n_g)
    si = np.empty(n_g)
    # the groups' distinct frequencies: cos and sin once per output time and frequency
    g_f = np.empty(n_g, dtype=np.int64)
    f_alpha = np.empty(n_g, dtype=np.int64)
    f_beta = np.empty(n_g, dtype=np.int64)
    n_f = 0
    for g in range(n_g):
        g_f[g] = -1
        for f in range(n_f):
            if f_alpha[f] == galpha[g] and f_beta[f] == gbeta[g]:
                g_f[g] = f
        if g_f[g] < 0:
            f_alpha[n_f] = galpha[g]
            f_beta[n_f] = gbeta[g]
            g_f[g] = n_f
            n_f += 1
    cos_f = np.empty(n_g)
    sin_f = np.empty(n_g)
    t = np.full(nl, t_out[0])
    ts = np.empty(nl)
    h = np.empty(nl)
    active = np.zeros(nl, dtype=np.bool_)
    accept = np.zeros(nl, dtype=np.bool_)
    next_out = np.ones(nl, dtype=np.int64)
    since_out = np.zeros(nl, dtype=np.int64)
    bad_tries = np.zeros(nl, dtype=np.int64)
    t_end = t_out[n_t - 1]
    queued = 0  # the next point of the queue
    for b in range(nl):
        if queued < n_pts:
            pt[b] = queued
            fresh[b] = True
            queued += 1
    n_active = 0
    n_fresh = nl
    while True:
        if n_fresh > 0:
            # start the fresh lanes on their points: state, data, step, then their initial
            # observables and F = f(t0, X) (computed for every lane into scratch arrays and taken
            # for the fresh lanes only: the other lanes' arrays are not touched)
            for b in range(nl):
                if not fresh[b]:
                    continue
                p = pt[b]
                for r in range(D):
                    Xr[r, b] = X0r[r, p]
                    Xi[r, b] = X0i[r, p]
                    dg[r, b] = dg_all[r, p]
                for k in range(n_coef):
                    coef[k, b] = coef_all[k, p]
                for q in range(n_ent):
                    owr[q, b] = owr_all[q, p]
                    owi[q, b] = owi_all[q, p]
                Omega[b] = Omega_all[p]
                omega_d[b] = omega_d_all[p]
                omega_a[b] = omega_a_all[p]
                omega_c[b] = omega_c_all[p]
                atol[b] = atol_all[p]
                rtol[b] = rtol_all[p]
                max_step[b] = max_step_all[p]
                nsteps[b] = nsteps_all[p]
                t[b] = t_out[0]
                h[b] = min(h0, t_end - t[b])
                if max_step[b] > 0:
                    h[b] = min(h[b], max_step[b])
                next_out[b] = 1
                since_out[b] = 0
                bad_tries[b] = 0
                scale0[b] = 1.0
                active[b] = True
                n_active += 1
            _expect(Xr, Xi, optr, orow, owr, owi, oshared, obs_nr, obs_ni)
            _stage(t, ones, Xr, Xi, Yr, Yi, dg, is_diag, ptr, col, wu, sgn, w_ch, w_vr, w_vi, Wr, Wi, coef,
                   Omega, omega_d, omega_a, omega_c, ch_k, ch_alpha, ch_beta, cr, ci)
            _expect(Yr, Yi, optr, orow, owr, owi, oshared, okGr, okGi)
            K0r = Kr[slot[0]]
            K0i = Ki[slot[0]]
            for b in range(nl):
                if not fresh[b]:
                    continue
                p = pt[b]
                for r in range(D):
                    K0r[r, b] = Yr[r, b]
                    K0i[r, b] = Yi[r, b]
                for mm in range(n_obs):
                    out[p, mm, 0] = 0.0
                for g in range(n_g):  # the frame coincides with the lab at t = 0
                    out[p, gobs[g], 0] += obs_nr[g, b]
                    obs_yr[g, b] = obs_nr[g, b]
                    obs_yi[g, b] = obs_ni[g, b]
                    okFr[g, b] = okGr[g, b]
                    okFi[g, b] = okGi[g, b]
                fresh[b] = False
            n_fresh = 0
        if n_active == 0:
            break
        kidx[0] = slot[0]
        for b in range(nl):  # K~_1 = h F, in place
            ts[b] = h[b] / scale0[b]
            scale0[b] = h[b]
        _scale_lanes(Kr[slot[0]], ts)
        _scale_lanes(Ki[slot[0]], ts)
        for s in range(1, 6):  # stages 2..6
            for b in range(nl):
                ts[b] = t[b] + Cc[s] * h[b]
            _combine(Xr.reshape(D * nl), Kr.reshape(7, D * nl), kidx, A[s], s, Yr.reshape(D * nl))
            _combine(Xi.reshape(D * nl), Ki.reshape(7, D * nl), kidx, A[s], s, Yi.reshape(D * nl))
            _stage(ts, h, Yr, Yi, Kr[kidx[s]], Ki[kidx[s]], dg, is_diag, ptr, col, wu, sgn, w_ch, w_vr, w_vi,
                   Wr, Wi, coef, Omega, omega_d, omega_a, omega_c, ch_k, ch_alpha, ch_beta, cr, ci)
        # the 5th-order solution N and the scaled stages' part of the error estimate (into Y,
        # free now)
        _solution(Xr, Xi, Kr, Ki, kidx, Bw, E, Nr, Ni, Yr, Yi)
        for b in range(nl):
            ts[b] = t[b] + h[b]
        _stage(ts, ones, Nr, Ni, Kr[slot[6]], Ki[slot[6]], dg, is_diag, ptr, col, wu, sgn, w_ch, w_vr, w_vi, Wr,
               Wi, coef, Omega, omega_d, omega_a, omega_c, ch_k, ch_alpha, ch_beta, cr, ci)
        _error_norm_h(Xr, Xi, Nr, Ni, Yr, Yi, Kr[slot[6]], Ki[slot[6]], E[6], h, atol, rtol, err)
        for b in range(nl):
            accept[b] = active[b] and math.isfinite(err[b]) and err[b] <= 1.0
        # observable groups of the (scaled) stages, for the dense output of accepted lanes
        for j in range(1, 6):
            if P[j, 0] != 0.0 or P[j, 1] != 0.0 or P[j, 2] != 0.0 or P[j, 3] != 0.0:  # (stage 2 has none)
                _expect(Kr[kidx[j]], Ki[kidx[j]], optr, orow, owr, owi, oshared, okr[j], oki[j])
        _expect(Kr[slot[6]], Ki[slot[6]], optr, orow, owr, owi, oshared, okGr, okGi)
        for g in range(n_g):
            for b in range(nl):
                okr[0, g, b] = h[b] * okFr[g, b]
                oki[0, g, b] = h[b] * okFi[g, b]
                okr[6, g, b] = h[b] * okGr[g, b]
                oki[6, g, b] = h[b] * okGi[g, b]
        _expect(Nr, Ni, optr, orow, owr, owi, oshared, obs_nr, obs_ni)
        for b in range(nl):
            if not active[b]:
                continue
            p = pt[b]
            finite = math.isfinite(err[b])
            done = False
            if accept[b]:
                bad_tries[b] = 0
                t_old = t[b]
                t_new = t_old + h[b]
                if t_end - t_new <= 1e-12 * max(1.0, abs(t_end)):
                    t_new = t_end
                n_steps[p] += 1
                since_out[b] += 1
                while next_out[b] < n_t and t_out[next_out[b]] <= t_new:
                    n = next_out[b]
                    x = (t_out[n] - t_old) / h[b]
                    x2 = x * x
                    x3 = x2 * x
                    x4 = x3 * x
                    for g in range(n_g):
                        accr = 0.0
                        acci = 0.0
                        for j in range(7):
                            bj = P[j, 0] * x + P[j, 1] * x2 + P[j, 2] * x3 + P[j, 3] * x4
                            accr += bj * okr[j, g, b]
                            acci += bj * oki[j, g, b]
                        sr[g] = obs_yr[g, b] + accr
                        si[g] = obs_yi[g, b] + acci
                    for mm in range(n_obs):
                        out[p, mm, n] = 0.0
                    for f in range(n_f):
                        phi = (f_alpha[f] * omega_a[b] + f_beta[f] * omega_c[b]) * t_out[n]
                        cos_f[f] = math.cos(phi)
                        sin_f[f] = math.sin(phi)
                    for g in range(n_g):
                        out[p, gobs[g], n] += cos_f[g_f[g]] * sr[g] + sin_f[g_f[g]] * si[g]
                    next_out[b] += 1
                    since_out[b] = 0
                t[b] = t_new
                for g in range(n_g):
                    obs_yr[g, b] = obs_nr[g, b]
                    obs_yi[g, b] = obs_ni[g, b]
                    okFr[g, b] = okGr[g, b]
                    okFi[g, b] = okGi[g, b]
                scale0[b] = 1.0  # K[slot[0]] <- G, unscaled
                if next_out[b] >= n_t:
                    done = True
                else:
                    factor = _MAX_FACTOR if err[b] == 0.0 else min(_MAX_FACTOR, _SAFETY * err[b] ** -0.2)
            else:
                n_rejected[p] += 1
                if finite:
                    factor = max(_MIN_FACTOR, _SAFETY * err[b] ** -0.2)
                else:
                    factor = _MIN_FACTOR
                    bad_tries[b] += 1
                    if bad_tries[b] > 30:
                        status[p] = NON_FINITE
                        done = True
            if not done:
                h[b] = min(h[b] * factor, t_end - t[b])
                if max_step[b] > 0:
                    h[b] = min(h[b], max_step[b])
                if h[b] < 1e-14 * max(1.0, abs(t[b])):
                    status[p] = STEP_UNDERFLOW
                    done = True
                elif since_out[b] > nsteps[b]:
                    status[p] = TOO_MANY_STEPS
                    done = True
            if done:  # the lane is free: the next point of the queue, if any
                active[b] = False
                n_active -= 1
                if queued < n_pts:
                    pt[b] = queued
                    fresh[b] = True
                    n_fresh += 1
                    queued += 1
        every = True
        for b in range(nl):
            if active[b] and not accept[b]:
                every = False
        if every:  # the common case: swap instead of copying
            Xr, Nr = Nr, Xr
            Xi, Ni = Ni, Xi
            s0 = slot[0]
            slot[0] = slot[6]
            slot[6] = s0
        else:
            _advance(Xr, Xi, Nr, Ni, Kr, Ki, slot, accept)


# ---------------------------------------------------------------------------------------------
# Driving the kernel


def lanes_for(st: Structure) -> int:
    """Lanes per kernel call: enough points for long SIMD loops, few enough that the ~22 state
    arrays of a step (D' x lanes doubles each, at most 16000 elements: 2.8 MB in all) stay close
    to a core's L2 cache, which the stage combinations stream through (benchmarks/README.md:
    32 lanes at n_fock 12, 16 at 20, 64 at 4)."""
    return int(min(64, max(16, 2 ** int(math.log2(max(1, 16000 // st.size))))))


@dataclass
class LaneResult:
    expect: dict  # name -> (n_t,) array
    status: int
    steps: int
    rejected: int


def integrate_group(points: Sequence[dict], st: Structure, tlist: np.ndarray,
                    lanes: int | None = None) -> list[LaneResult]:
    """Integrate validated points that share ``st`` and ``tlist`` in one kernel call, on
    ``lanes`` lanes (default :func:`lanes_for`) refilled from the points in their order."""
    from .model import operators

    models = [operators(p) for p in points]
    X = np.stack([st.to_upper(m.rho0) for m in models], axis=-1)
    return _expect_run(points, st, X, tlist, models, lanes)


#: Most points one kernel call takes: the lanes are refilled from them, and a call ends with
#: its lanes draining one by one (the last points' runs), so a longer queue wastes less (measured
#: on a 100 x 100 map, benchmarks/README.md) ...
QUEUE_LANES = 8
#: ... within this many bytes of output (the call holds every point's n_obs x n_t values).
QUEUE_BYTES = 96 * 2**20


def queue_for(st: Structure, n_t: int, lanes: int) -> int:
    """Points per kernel call: QUEUE_LANES x lanes, fewer if their output would pass QUEUE_BYTES
    (16 observables of n_t doubles a point, an upper bound), never fewer than the lanes."""
    return max(lanes, min(QUEUE_LANES * lanes, QUEUE_BYTES // (16 * 8 * max(1, n_t))))


def _difficulty(p: dict) -> float:
    """A guess of a point's integration work, to queue the hardest points first (the lanes then
    drain on the easiest ones, the longest-job-first rule). In the rotating frame the step
    follows the coupling at the cutoff, the detuning and the drive; a tighter rtol takes
    ~rtol^(-1/5) more steps (5th order). Only the order matters, and only for speed."""
    rate = p["Omega"] + (p["g"] * math.sqrt(p["n_fock"]) + abs(p["omega_a"] - p["omega_c"]) if p["catalyst"] else 0.0)
    return rate * p["rtol"] ** -0.2


def iter_simulate(params_list: Sequence[dict], lanes: int | None = None):
    """Simulate validated points; yields (index, Trajectory or SimulationError) queue by queue.

    Points are grouped by shape (catalyst, n_fock, time grid); each group is sorted hardest
    first (:func:`_difficulty`) and integrated in kernel calls of :func:`queue_for` points on
    ``lanes`` lanes each (default :func:`lanes_for`); a call's points are yielded as soon as it
    is done. A point that fails (non-finite values, step size underflow, too many steps) gets a
    SimulationError naming its parameters; the other points of its call are unaffected.
    """
    from .solve import SimulationError, _describe, trajectory_from_expect

    groups: dict = {}
    for i, p in enumerate(params_list):
        key = (p["catalyst"], p["n_fock"] if p["catalyst"] else 0, p["t_max"], p["n_t"])
        groups.setdefault(key, []).append(i)
    for (catalyst, n_fock, t_max, n_t), idx in groups.items():
        idx = sorted(idx, key=lambda i: -_difficulty(params_list[i]))
        st = structure(catalyst, n_fock)
        tlist = np.linspace(0.0, t_max, n_t)
        nl = lanes or lanes_for(st)
        queue = queue_for(st, n_t, nl)
        for start in range(0, len(idx), queue):
            part = idx[start:start + queue]
            t0 = _time.perf_counter()
            lane_results = integrate_group([params_list[i] for i in part], st, tlist, nl)
            wall = (_time.perf_counter() - t0) / len(part)
            for i, lr in zip(part, lane_results):
                p = params_list[i]
                if lr.status != OK:
                    yield i, SimulationError(
                        f"solver failed (batched engine: {STATUS_TEXT[lr.status]}, after {lr.steps} steps) at point "
                        f"{_describe(p)}; try a larger nsteps, a smaller max_step, looser atol/rtol or "
                        "engine=qutip with method=bdf (stiff points)")
                    continue
                bad = [k for k, v in lr.expect.items() if not np.all(np.isfinite(v))]
                if bad:
                    yield i, SimulationError(
                        f"non-finite {', '.join(bad)} at point {_describe(p)}; "
                        "try tighter atol/rtol or a smaller max_step")
                    continue
                yield i, trajectory_from_expect(p, tlist, lr.expect, wall,
                                                {"steps": lr.steps, "rejected": lr.rejected})


def simulate_many(params_list: Sequence[dict], lanes: int | None = None) -> list:
    """:func:`iter_simulate` collected in input order: a Trajectory or a SimulationError per point."""
    results: list = [None] * len(params_list)
    for i, result in iter_simulate(params_list, lanes):
        results[i] = result
    return results


# ---------------------------------------------------------------------------------------------
# Propagation of given matrices (the one-period map of the steady state, qbcat.science.steady)
#
# The linear map rho(t0) -> rho(t1) applied to arbitrary Hermitian matrices (density matrices,
# basis matrices, Krylov vectors), each lane with its own point and its own initial matrix. It
# reuses :func:`_integrate` unchanged: the "observables" are the matrix elements themselves,
# Re rho_r and Im rho_r of every upper-triangle element r, read out at t1 by the kernel's own
# lab-frame dense output (group frequency Delta_r: <A>(t) = Re(exp(-i Delta_r t) conj(w) X_r),
# i.e. rho_r = X_r exp(-i Delta_r t) for w = 1 and -i rho_r for w = i). No step-control code is
# duplicated (a separate driver would repeat ~100 lines of _integrate); the price is the extra
# expectation sums, ~d^2 per stage (measured in benchmarks/README.md, "Steady state").


def _lane_arrays(points: Sequence[dict], st: Structure) -> dict:
    """The per-lane coefficient arrays of the kernel for validated points sharing ``st``."""
    coef = np.zeros((len(st.names) + 1, len(points)))
    for b, p in enumerate(points):
        if bool(p["catalyst"]) != st.catalyst or (st.catalyst and p["n_fock"] != st.dim // 2):
            raise ValueError("every point of a group must have the structure's catalyst and n_fock")
        coef[:-1, b] = [p[name] for name in st.names]
    static = [k for k, name in enumerate(st.names) if name not in FRAME]
    return dict(
        dg=np.ascontiguousarray(np.einsum("kr,kb->rb", st.diag[static], coef[static])), coef=coef,
        Omega=np.array([p["Omega"] for p in points], dtype=float),
        omega_d=np.array([p["omega_d"] for p in points], dtype=float),
        omega_a=np.array([p["omega_a"] for p in points], dtype=float),
        omega_c=np.array([p["omega_c"] if p["catalyst"] else 0.0 for p in points], dtype=float),
        atol=np.array([p["atol"] for p in points], dtype=float),
        rtol=np.array([p["rtol"] for p in points], dtype=float),
        max_step=np.array([p["max_step"] for p in points], dtype=float),
        nsteps=np.array([p["nsteps"] for p in points], dtype=np.int64),
    )


def _run_kernel(points, st, X, tlist, optr, orow, Wr, Wi, gobs, galpha, gbeta, n_obs, lanes=None):
    """One :func:`_integrate` call for every point on ``lanes`` lanes (default
    :func:`lanes_for`), refilled from the queue in the given order; returns (out, status,
    steps, rejected), indexed by point."""
    n = len(points)
    a = _lane_arrays(points, st)
    out = np.zeros((n, n_obs, len(tlist)))
    status = np.zeros(n, dtype=np.int64)
    n_steps = np.zeros(n, dtype=np.int64)
    n_rej = np.zeros(n, dtype=np.int64)
    if n == 0:
        return out, status, n_steps, n_rej
    nl = min(n, lanes or lanes_for(st))
    dt = tlist[1] - tlist[0] if len(tlist) > 1 else 1.0
    shared = np.all(Wr == Wr[:, :1], axis=1) & np.all(Wi == Wi[:, :1], axis=1)
    _integrate(
        np.ascontiguousarray(X.real), np.ascontiguousarray(X.imag), a["dg"], st.is_diag, st.ptr,
        st.col, st.weight, st.conj, st.w_ch, np.ascontiguousarray(st.w_v.real),
        np.ascontiguousarray(st.w_v.imag), a["coef"], a["Omega"], a["omega_d"], a["omega_a"], a["omega_c"], st.ch_k,
        st.ch_alpha, st.ch_beta, optr, orow, Wr, Wi, shared, gobs, galpha, gbeta, np.asarray(tlist, dtype=float),
        a["atol"], a["rtol"], a["max_step"], a["nsteps"], min(0.01, dt), _A, _B, _C, _E, _P, out, status,
        n_steps, n_rej, nl,
    )
    return out, status, n_steps, n_rej


_ELEMENT_GROUPS: dict = {}


def _element_groups(st: Structure):
    """Observable groups that read the lab-frame matrix elements: Re rho_r for every r, then
    Im rho_r for every off-diagonal r (one element, weight 1 or i, frequency Delta_r each)."""
    key = (st.catalyst, st.dim)
    if key not in _ELEMENT_GROUPS:
        off = np.flatnonzero(~st.is_diag)
        rows = np.concatenate([np.arange(st.size), off]).astype(np.int64)
        wr = np.concatenate([np.ones(st.size), np.zeros(len(off))])
        wi = np.concatenate([np.zeros(st.size), np.ones(len(off))])
        n = len(rows)
        _ELEMENT_GROUPS[key] = (np.arange(n + 1, dtype=np.int64), rows, wr, wi,
                                np.arange(n, dtype=np.int64), st.alpha[rows].astype(np.int64),
                                st.beta[rows].astype(np.int64), off)
    return _ELEMENT_GROUPS[key]


def propagate(points: Sequence[dict], rho0: np.ndarray, t1: float, t0: float = 0.0,
              lanes: int | None = None) -> np.ndarray:
    """rho_b(t1) for rho_b(t0) = rho0[b] under the Lindbladian of points[b], every b at once.

    ``points``: validated parameter sets sharing one (catalyst, n_fock); ``rho0``: (n, d, d)
    Hermitian matrices (any Hermitian matrix: the map is linear, so basis matrices and Krylov
    vectors work as well as states). One kernel call on ``lanes`` lanes (default
    :func:`lanes_for`), refilled from the matrices in order. Returns (n, d, d) complex in the lab frame; raises
    :class:`qbcat.engine.solve.SimulationError` naming a lane's point if its integration failed.
    """
    from .solve import SimulationError, _describe

    rho0 = np.asarray(rho0, dtype=complex)
    n = len(points)
    if n == 0:
        return np.zeros((0,) + rho0.shape[1:], dtype=complex)
    p0 = points[0]
    st = structure(p0["catalyst"], p0.get("n_fock", 2))
    d = st.dim
    if rho0.shape != (n, d, d):
        raise ValueError(f"rho0 must have shape ({n}, {d}, {d}), got {rho0.shape}")
    if not np.allclose(rho0, rho0.conj().transpose(0, 2, 1), atol=1e-12 * max(1.0, float(np.abs(rho0).max()))):
        raise ValueError("propagate: the initial matrices must be Hermitian")
    optr, orow, wr, wi, gobs, galpha, gbeta, off = _element_groups(st)
    i, j = st.rows[:, 0], st.rows[:, 1]
    # the frame at t0: X_r = rho_r exp(i Delta_r t0)
    delta = np.array([st.alpha * p["omega_a"] + st.beta * (p["omega_c"] if p["catalyst"] else 0.0)
                      for p in points]).T  # (D', n)
    X = rho0[:, i, j].T * np.exp(1j * delta * t0)
    out, status, _, _ = _run_kernel(
        points, st, np.ascontiguousarray(X), np.array([t0, t1], dtype=float), optr, orow,
        np.ascontiguousarray(np.repeat(wr[:, None], n, axis=1)),
        np.ascontiguousarray(np.repeat(wi[:, None], n, axis=1)), gobs, galpha, gbeta, len(orow), lanes)
    bad = np.flatnonzero(status != OK)
    if bad.size:
        b = bad[0]
        raise SimulationError(f"propagation failed (batched engine: {STATUS_TEXT[int(status[b])]}) at point "
                              f"{_describe(points[b])}")
    out_all = out[:, :, 1]
    upper = out_all[:, :st.size].astype(complex)
    upper[:, off] += 1j * out_all[:, st.size:]
    rho = np.zeros((n, d, d), dtype=complex)
    rho[:, i, j] = upper
    rho[:, j, i] = upper.conj()
    return rho


def _observable_groups(st: Structure, W: np.ndarray) -> tuple:
    """The kernel's observable groups for weights W (n_obs, D', lanes) of
    :meth:`Structure.expect_weights`: one group per (observable, frequency of the element in the
    frame), each sparse over r (the union over lanes of the non-zero weights). Returns (optr,
    orow, Wr, Wi, gobs, galpha, gbeta) as :func:`_integrate` takes them."""
    optr, orow, gobs, galpha, gbeta, wsel = [0], [], [], [], [], []
    for mm in range(W.shape[0]):
        nz = np.flatnonzero(np.any(W[mm] != 0, axis=1))
        for a, bb in sorted({(int(st.alpha[r]), int(st.beta[r])) for r in nz}):
            sel = nz[(st.alpha[nz] == a) & (st.beta[nz] == bb)]
            orow.extend(sel)
            wsel.append(W[mm, sel])
            optr.append(len(orow))
            gobs.append(mm)
            galpha.append(a)
            gbeta.append(bb)
    Wsel = np.concatenate(wsel) if wsel else np.zeros((0, W.shape[-1]), dtype=complex)
    return (np.array(optr, dtype=np.int64), np.array(orow, dtype=np.int64), np.ascontiguousarray(Wsel.real),
            np.ascontiguousarray(Wsel.imag), np.array(gobs, dtype=np.int64), np.array(galpha, dtype=np.int64),
            np.array(gbeta, dtype=np.int64))


def _expect_run(points: Sequence[dict], st: Structure, X: np.ndarray, tlist: np.ndarray,
                models: Sequence | None = None, lanes: int | None = None) -> list[LaneResult]:
    """One kernel call from the rotating-frame states X (D', points) for the expectation values of
    :func:`qbcat.engine.solve.expect_operators` (the same names for every point) on ``tlist``, on
    ``lanes`` lanes (:func:`_run_kernel`); ``models``: the points' :func:`qbcat.engine.model.operators`,
    if already built."""
    from .model import operators
    from .solve import expect_operators

    # the operators depend on the point through n_fock/catalyst and, for the energy operators,
    # omega_a and omega_c: weights per lane
    ops = [expect_operators(m) for m in (models or [operators(p) for p in points])]
    names = list(ops[0])
    if any(list(o) != names for o in ops):
        raise ValueError("points of one group must have the same expectation operators")
    W = np.moveaxis(st.expect_weights(np.array([[o[k] for k in names] for o in ops])), 0, -1)  # (n_obs, D', nl)
    out, status, steps, rej = _run_kernel(points, st, X, np.asarray(tlist, dtype=float),
                                          *_observable_groups(st, W), len(names), lanes)
    return [LaneResult({k: out[b, m] for m, k in enumerate(names)}, int(status[b]), int(steps[b]), int(rej[b]))
            for b in range(len(points))]


def evolve_expect(points: Sequence[dict], rho0: np.ndarray, tlist: np.ndarray,
                  lanes: int | None = None) -> list[LaneResult]:
    """The expectation values of :func:`qbcat.engine.solve.expect_operators` on ``tlist`` from the given
    initial states rho0[b] (instead of the points' own), as :func:`integrate_group` returns them."""
    p0 = points[0]
    st = structure(p0["catalyst"], p0.get("n_fock", 2))
    i, j = st.rows[:, 0], st.rows[:, 1]
    X = np.asarray(rho0, dtype=complex)[:, i, j].T  # the frame coincides with the lab at t = 0
    return _expect_run(list(points), st, np.ascontiguousarray(X), tlist, lanes=lanes)
