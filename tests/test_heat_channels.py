"""The heat current's two channels in the analysis: per-channel backflow statistics against hand
integrals of piecewise-constant currents, their columns in the point and correlation tables.

(The channels themselves are checked against an independent integrator's full states in
test_physics.py::test_heat_current_channels_from_full_states.)
"""

from __future__ import annotations

import numpy as np
import pytest

from qbcat.science import analysis as A

T = np.linspace(0.0, 10.0, 10001)
DT = T[1] - T[0]


def piecewise_sweep():
    """One catalyzed point with hand-integrable channels, and a second one without backflow.

    Point 0:  t < 2: J_cat = -1, J_deph = +0.4  -> J = -0.6, catalyst the more negative
              2 <= t < 4: J_cat = -1, J_deph = -0.5 -> J = -1.5, catalyst the more negative
              t >= 4: J_cat = +0.3, J_deph = -0.5 -> J = -0.2, dephasing the more negative
    Point 1:  J_cat = +0.1, J_deph = +0.2: no backflow.
    """
    jc = np.where(T < 4, -1.0, 0.3)
    jd = np.where(T < 2, 0.4, -0.5)
    Jc = np.stack([jc, np.full_like(T, 0.1)])
    Jd = np.stack([jd, np.full_like(T, 0.2)])
    J_base = 0.05 * np.sin(T)
    return A.build_sweep(
        {"g": [0.1, 0.2]}, T,
        {"ergotropy": np.ones_like(Jc), "heat_current": Jc + Jd, "heat_current_catalyst": Jc,
         "heat_current_dephasing": Jd},
        {"ergotropy": np.full_like(T, 0.5), "heat_current": J_base, "heat_current_catalyst": 0 * T,
         "heat_current_dephasing": J_base},
        name="pieces")


def test_channel_statistics_against_hand_integrals():
    ch = A.channel_statistics(piecewise_sweep())
    c = ch.sel(case="catalyzed", g=0.1)
    assert float(c["min_heat_current_catalyst"]) == -1.0
    assert float(c["min_heat_current_dephasing"]) == -0.5
    assert float(c["integrated_backflow_catalyst"]) == pytest.approx(-4.0, abs=2 * DT)
    assert float(c["integrated_backflow_dephasing"]) == pytest.approx(-4.0, abs=2 * DT)
    # J < 0 all the time; the catalyst is the more negative channel for t < 4
    assert float(c["backflow_time_catalyst_dominant"]) == pytest.approx(0.4, abs=2 * DT)
    assert float(c["window_fraction_catalyst_backflow"]) == pytest.approx(0.4, abs=2 * DT)
    assert float(c["backflow_catalyst_share"]) == pytest.approx(4.0 / 8.0, abs=2 * DT)
    # no backflow: shares undefined, nothing integrated
    quiet = ch.sel(case="catalyzed", g=0.2)
    assert np.isnan(quiet["backflow_catalyst_share"]) and np.isnan(quiet["backflow_time_catalyst_dominant"])
    assert float(quiet["integrated_backflow_catalyst"]) == 0.0
    assert float(quiet["window_fraction_catalyst_backflow"]) == 0.0
    # the baseline's backflow is all dephasing
    b = ch.sel(case="baseline", g=0.1)
    assert float(b["backflow_catalyst_share"]) == 0.0 and float(b["backflow_time_catalyst_dominant"]) == 0.0
    for name in A.CHANNEL_METRICS:
        assert ch[name].attrs["units"] and ch[name].attrs["long_name"]


def test_channel_window():
    ch = A.channel_statistics(piecewise_sweep(), t_start=0.0, t_end=3.0).sel(case="catalyzed", g=0.1)
    assert float(ch["backflow_time_catalyst_dominant"]) == pytest.approx(1.0)
    assert float(ch["backflow_catalyst_share"]) == pytest.approx(3.0 / 3.5, abs=2 * DT)


def test_channels_in_point_and_correlation_tables():
    ds = piecewise_sweep()
    table = A.point_table(ds, early_t_end=3.0)
    for m in A.CHANNEL_METRICS:
        assert m in table.columns and f"early_{m}" in table.columns
    row = table[table["g"] == 0.1].iloc[0]
    assert row["early_backflow_time_catalyst_dominant"] == pytest.approx(1.0)
    assert row["backflow_time_catalyst_dominant"] == pytest.approx(0.4, abs=2 * DT)
    corr = A.correlation_table(table)
    assert {"integrated_backflow_catalyst", "integrated_backflow_dephasing"} <= set(corr["backflow_metric"])
    # a sweep without the channels (an older qbcat) still gives its table, without channel columns
    old = ds.drop_vars(["heat_current_catalyst", "heat_current_dephasing"])
    assert not A.has_channels(old)
    old_table = A.point_table(old)
    assert "backflow_catalyst_share" not in old_table.columns
    assert "integrated_backflow_catalyst" not in set(A.correlation_table(old_table)["backflow_metric"])
    with pytest.raises(A.SweepFormatError, match="heat_current_catalyst"):
        A.channel_statistics(old)
