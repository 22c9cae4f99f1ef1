"""The photon-cutoff certificate of every catalyzed point, and ``n_fock: auto``.

The oscillator is truncated to photon numbers 0..n_fock-1. A point's certificate compares its
run at n_fock with a run of the same point at n_fock + ``cutoff_gap``:

    cutoff_deviation_X = max_t |X_{n_fock}(t) - X_{n_fock + gap}(t)|,  X = ergotropy, heat_current,
                                                                         energy_cat,
    cutoff_top_population = max_t <n_fock - 1| rho_cat(t) |n_fock - 1>,

the second being what the truncation cuts off (the population that would flow further up). The
certificate passes when every deviation is at most ``cutoff_tolerance`` (absolute, in the
observable's units: hbar omega_0, per time for the heat current) and the top population at most
``cutoff_top_tolerance``. The deviation from a run ``gap`` levels higher estimates the
truncation error itself: it falls about 10x per 2 levels, so n_fock + 4 is already within a few
percent of the converged answer (measured: benchmarks/README.md, "Photon cutoff").

The reference run's tolerances: with a fixed n_fock the reference is run at
``REFERENCE_LOOSENING`` (10) times the point's atol and rtol. It only has to be accurate to a small
part of ``cutoff_tolerance``: at the default tolerances its own error in the certified observables
is at most 2e-5 over the g x omega_c map of benchmarks/bench_maps.py (against 2e-6 for the point's
run), 2 % of the default ``cutoff_tolerance`` 1e-3, and it costs ~40 % less (benchmarks/README.md,
"Photon cutoff"). The point's own run, the numbers in its file, keeps the point's tolerances. The
factor is fixed, not derived from ``cutoff_tolerance``, so that a fixed cutoff's thresholds only
flag (they are not part of its identity); a certificate tighter than ~1e-4 needs a tighter rtol.
With ``n_fock: auto`` the reference is a later rung's own run, at the point's tolerances.

``n_fock: auto``: the point is run up the ladder n_fock_min, n_fock_min + n_fock_step, ...,
n_fock_max and keeps the first cutoff whose certificate passes (at n_fock_max it is kept and
flagged if even that fails). A point's identity is its physics and this policy, not the cutoff
that comes out, so the workflow knows every file before anything runs; the chosen cutoff is
stored with the point (attribute ``cutoff_n_fock``, variable ``n_fock`` of the sweep datasets).

The runs of many points are batched: :func:`simulate_certified` takes the points of a batch in
chunks, and each round integrates every run the chunk's open points need next in one call of
:func:`qbcat.engine.solve.simulate_points` (with ``n_fock_step`` dividing ``cutoff_gap`` a rung's
reference run is a later rung's own run, so climbing one rung costs one new run per point).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .params import validate
from .solve import SimulationError, Trajectory, simulate_points

#: The observables a certificate compares (energy_cat: the catalyst's energy, the most sensitive).
CERTIFIED = ("ergotropy", "heat_current", "energy_cat")

#: A fixed cutoff's reference run is at this many times the point's atol and rtol (module doc).
REFERENCE_LOOSENING = 10.0

#: Points certified together: their runs are held in memory until the chunk is done (~2 x 0.45 MB
#: a point at n_t 3001: ~230 MB), and each round batches the chunk's runs. The kernel refills its
#: lanes from a round's runs and ends draining them, so a longer queue idles less: 256 points fill
#: the 32 lanes of n_fock 12 eight times over (qbcat.engine.batched.queue_for).
CHUNK = 256


def ladder(p: dict) -> list[int]:
    """The cutoffs ``n_fock: auto`` tries, in order; a fixed n_fock is its own one-rung ladder."""
    if p["n_fock"] != "auto":
        return [p["n_fock"]]
    return list(range(p["n_fock_min"], p["n_fock_max"] + 1, p["n_fock_step"]))


@dataclass(frozen=True)
class Certificate:
    """A point's run at ``n_fock`` against its run at ``n_fock_reference`` (see the module doc)."""

    n_fock: int
    n_fock_reference: int
    deviation: dict  # CERTIFIED name -> max_t |X_n - X_ref|
    top_population: float
    reference_rtol: float = math.nan  # the reference run's tolerances (not known when re-flagged
    reference_atol: float = math.nan  # from a sweep's variables)

    def violations(self, p: dict) -> list[str]:
        """What breaks the thresholds of point ``p`` (cutoff_tolerance, cutoff_top_tolerance)."""
        out = [f"{name} deviates by {value:.3g} > cutoff_tolerance {p['cutoff_tolerance']:g}"
               for name, value in self.deviation.items() if not value <= p["cutoff_tolerance"]]
        if not self.top_population <= p["cutoff_top_tolerance"]:
            out.append(f"top Fock level population {self.top_population:.3g} > cutoff_top_tolerance "
                       f"{p['cutoff_top_tolerance']:g}")
        return out

    def passed(self, p: dict) -> bool:
        return not self.violations(p)

    def attrs(self, p: dict) -> dict:
        """The point file's attributes: the numbers and the verdict at ``p``'s thresholds."""
        broken = self.violations(p)
        return {
            "cutoff_n_fock": self.n_fock,
            "cutoff_n_fock_reference": self.n_fock_reference,
            **{f"cutoff_deviation_{name}": value for name, value in self.deviation.items()},
            "cutoff_top_population": self.top_population,
            "cutoff_reference_rtol": self.reference_rtol,
            "cutoff_reference_atol": self.reference_atol,
            "cutoff_ok": int(not broken),
            "cutoff_violations": "; ".join(broken) or "none",
        }


def certify(run: Trajectory, reference: Trajectory) -> Certificate:
    """The certificate of ``run`` against the same point's ``reference`` at a larger cutoff."""
    deviation = {name: float(np.max(np.abs(run.data[name] - reference.data[name]))) for name in CERTIFIED}
    return Certificate(run.params["n_fock"], reference.params["n_fock"], deviation, run.top_population,
                       reference.params["rtol"], reference.params["atol"])


@dataclass
class _Search:
    """One catalyzed point on its way up the ladder."""

    params: dict
    rungs: list
    k: int = 0
    runs: dict = field(default_factory=dict)  # n_fock -> Trajectory | SimulationError (rungs still needed)
    spent: float = 0.0  # solver seconds of every run so far

    @property
    def n(self) -> int:
        return self.rungs[self.k]

    @property
    def needed(self) -> tuple[int, int]:
        return self.n, self.n + self.params["cutoff_gap"]

    def run_params(self, n: int) -> dict:
        """The parameters of the run at cutoff n: the point's own, except the reference run of a
        one-rung ladder (a fixed n_fock), which no later rung reuses: REFERENCE_LOOSENING x its
        atol and rtol (module doc)."""
        run = {**self.params, "n_fock": n}
        if len(self.rungs) == 1 and n != self.n:
            run["rtol"] = self.params["rtol"] * REFERENCE_LOOSENING
            run["atol"] = self.params["atol"] * REFERENCE_LOOSENING
        return run


def simulate_certified(params_list: Sequence[dict], chunk: int = CHUNK
                       ) -> Iterator[tuple[int, Trajectory | SimulationError]]:
    """Simulate points as the workflow stores them: every catalyzed point with its certificate.

    Yields (index into ``params_list``, Trajectory or SimulationError) as points are done. A
    catalyzed point's Trajectory is its run at the certified (or, with auto, chosen) cutoff,
    with ``params`` as given (n_fock may be "auto") and ``certificate`` set; a baseline has no
    cutoff and no certificate. A point fails when one of its runs fails (the error names the
    run's n_fock).
    """
    ps = [validate(p) for p in params_list]
    baseline = [i for i, p in enumerate(ps) if not p["catalyst"]]
    if baseline:
        for k, result in simulate_points([ps[i] for i in baseline]):
            yield baseline[k], result
    catalyzed = [i for i, p in enumerate(ps) if p["catalyst"]]
    for start in range(0, len(catalyzed), chunk):
        part = catalyzed[start:start + chunk]
        yield from _certify_chunk({i: _Search(ps[i], ladder(ps[i])) for i in part})


def _certify_chunk(open_: dict) -> Iterator[tuple[int, Trajectory | SimulationError]]:
    """Rounds: run what every open point needs next (in one batched call), then decide."""
    while open_:
        requests = [(i, n) for i, s in open_.items() for n in s.needed if n not in s.runs]
        runs = [open_[i].run_params(n) for i, n in requests]
        for k, result in simulate_points(runs):
            i, n = requests[k]
            open_[i].runs[n] = result
            open_[i].spent += getattr(result, "wall_time", 0.0)
        for i in list(open_):
            s = open_[i]
            run, ref = (s.runs[n] for n in s.needed)
            failed = next((r for r in (run, ref) if isinstance(r, SimulationError)), None)
            if failed is not None:
                which = "" if failed is run else f"the certificate's reference run (n_fock={s.needed[1]}): "
                del open_[i]
                yield i, SimulationError(f"{which}{failed}")
                continue
            cert = certify(run, ref)
            if cert.passed(s.params) or s.k == len(s.rungs) - 1:
                del open_[i]
                run.params = s.params
                run.certificate = cert
                run.wall_time = s.spent  # the point's cost: all its runs
                yield i, run
                continue
            s.k += 1
            s.runs = {n: r for n, r in s.runs.items() if n >= s.n}  # lower rungs are done with


def describe(cert: Certificate | None) -> str:
    """One line: 'n_fock 10 (against 14): max deviation 4.7e-04 (energy_cat), top level 7.9e-05'."""
    if cert is None:
        return "no cutoff (baseline)"
    worst = max(cert.deviation, key=lambda name: cert.deviation[name] if math.isfinite(cert.deviation[name])
                else math.inf)
    return (f"n_fock {cert.n_fock} (against {cert.n_fock_reference}): max deviation "
            f"{cert.deviation[worst]:.2g} ({worst}), top level {cert.top_population:.2g}")


def resolve(p: dict, progress=None) -> dict:
    """Validated ``p`` with an integer cutoff: with n_fock "auto" the one its ladder picks
    (the certified run; the chosen cutoff is what the study's point uses), else ``p`` as it is."""
    p = validate(p)
    if not (p["catalyst"] and p["n_fock"] == "auto"):
        return p
    ((_, traj),) = simulate_certified([p])
    if isinstance(traj, Exception):
        raise traj
    if progress:
        progress(f"n_fock auto: {describe(traj.certificate)}")
    return {**p, "n_fock": traj.certificate.n_fock}

