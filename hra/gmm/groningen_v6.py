"""Groningen ground-motion model GMM-V6 (Bommer et al. 2019) with site response per zone.

Reference
---------
Bommer, J.J., Edwards, B., Kruiver, P.P., Rodriguez-Marek, A., Stafford, P.J., Dost, B.,
Ntinalexis, M., Ruigrok, E. & Spetzler, J. (2019). *V6 Ground-Motion Model for Induced
Seismicity in the Groningen Gas Field.* NAM report, March 2019. Equation numbers (5.x) as cited
by the public TNO implementation; equations restated in docs/model-chain.md §3.7.
Tables: TNO's transcription (EUPL-1.2), read at run time (:mod:`hra.inputs.modeldata`).

Differences from GMM-V7 (:mod:`hra.gmm.groningen_v7`, whose integration machinery is reused):

* 23 spectral periods 0.01-5 s (+ PGV, not offered here); AvgSa and PGA use the same 10 periods
  (0.01-1 s) as V7;
* source term with hinges 4.7 and 5.45 (eq. 5.2a-c)::

      M <= 4.7        : m0 + m1 (M - 4.7) + m2 (M - 4.7)^2
      4.7 < M <= 5.45 : m0 + m3 (M - 4.7)
      M > 5.45        : m0 + 0.75 m3 + m4 (M - 5.45) + m5 (M - 5.45)^2

* path term with 3 segments (eq. 5.3a-c)::

      (r0 + r1 M) ln clip(R/3, 1, 7/3) + (r2 + r3 M) ln clip(R/7, 1, 12/7) + (r4 + r5 M) ln max(R/12, 1)

* tau has 4 levels tied one-to-one to the median levels: one joint node ``gmm_median`` with
  weights 0.1/0.3/0.3/0.3; phi_SS 2 levels (0.5/0.5); tau is period-dependent;
* linear AF (eq. 5.8-5.9): ``f1 = a0 + a1 lnR + (b0 + b1 lnR) min(M - Mref(R), 0)``,
  ``Mref = M1 - (lnR - ln 3)/ln 20 (M1 - M2)``; non-linear term, clipping and phi_S2S (eq. 5.11,
  columns ``phiS2S_1, phi_S2S_2, Sa_low, Sa_high`` in g) as in V7, with the reference Sa in g;
* the site term defaults to **aleatory** (lognormal, per-period eps with the reference p2p
  correlation: TNO's "consistent" recommendation and default; ``s2s_p2p="zero"`` gives the
  NAM/SodM prescription);
* the wierde factor and the component-to-component variance (eq. 5.5-5.6, the same Stafford et
  al. 2019 form) are applied as for V7, as the TNO chain does.
"""

from __future__ import annotations

import numpy as np

from hra.inputs import modeldata as md
from hra.gmm.groningen_v7 import (
    LN_TABLE_G,
    PHI_SS_WEIGHTS,
    S2S_EPSILONS,
    S2S_WEIGHTS,
    GroningenV7,
    _branch_index,
)
from hra.core.logictree import LogicTree, Node

#: Source-term hinge magnitudes (eq. 5.2).
MH1_V6 = 4.7
MH2_V6 = 5.45
#: Path-term hinge distances (eq. 5.3). [km]
RH_V6 = (3.0, 7.0, 12.0)
#: Joint weights of the 4 median (= tau) levels.
MEDIAN_WEIGHTS_V6 = (0.1, 0.3, 0.3, 0.3)

REFERENCE = (
    "Bommer et al. (2019), V6 Ground-Motion Model for Induced Seismicity in the Groningen Gas Field, NAM report "
    "(March 2019); c2c: Stafford et al. (2019); tables: TNO SHRA-Groningen-hazard-risk-models "
    f"@ {md.UPSTREAM_COMMIT[:7]} (EUPL-1.2)"
)


def source_term_v6(magnitude, m0, m1, m2, m3, m4, m5):
    """Source term f_S(M), eq. 5.2a-c [ln cm/s^2] (hinges 4.7 and 5.45)."""
    m = np.asarray(magnitude, float)
    d1 = m - MH1_V6
    d2 = m - MH2_V6
    low = m0 + m1 * d1 + m2 * d1 * d1
    mid = m0 + m3 * d1
    high = m0 + m3 * (MH2_V6 - MH1_V6) + m4 * d2 + m5 * d2 * d2
    return np.where(m <= MH1_V6, low, np.where(m <= MH2_V6, mid, high))


def path_term_v6(rrup_km, magnitude, r0, r1, r2, r3, r4, r5):
    """Path term, eq. 5.3a-c [ln units]; R = rupture distance [km]."""
    r = np.asarray(rrup_km, float)
    m = np.asarray(magnitude, float)
    g0 = np.log(np.clip(r / RH_V6[0], 1.0, RH_V6[1] / RH_V6[0]))
    g1 = np.log(np.clip(r / RH_V6[1], 1.0, RH_V6[2] / RH_V6[1]))
    g2 = np.log(np.maximum(r / RH_V6[2], 1.0))
    return (r0 + r1 * m) * g0 + (r2 + r3 * m) * g1 + (r4 + r5 * m) * g2


def ln_median_reference_cms2_v6(magnitude, rrup_km, c):
    """Median reference (NS_B) Sa, geometric mean, eq. 5.1 = 5.2 + 5.3. [ln cm/s^2]"""
    return source_term_v6(magnitude, c["m0"], c["m1"], c["m2"], c["m3"], c["m4"], c["m5"]) + path_term_v6(
        rrup_km, magnitude, c["r0"], c["r1"], c["r2"], c["r3"], c["r4"], c["r5"]
    )


def af_linear_v6(magnitude, rrup_km, c):
    """Linear part f1 of ln AF, eq. 5.8-5.9::

        Mref = M1 - (ln R - ln 3)/ln(60/3) (M1 - M2)
        f1   = a0 + a1 ln R + (b0 + b1 ln R) min(M - Mref, 0)
    """
    m = np.asarray(magnitude, float)
    lnr = np.log(np.asarray(rrup_km, float))
    mref = c["M1"] - (lnr - np.log(3.0)) / np.log(20.0) * (c["M1"] - c["M2"])
    return c["a0"] + c["a1"] * lnr + (c["b0"] + c["b1"] * lnr) * np.minimum(m - mref, 0.0)


class GroningenV6(GroningenV7):
    """GMM-V6 (Bommer et al. 2019) at the surface of a site-response zone; IMs AvgSa, PGA and SA(T) (0.01-1 s).

    Same interface and options as :class:`~hra.gmm.groningen_v7.GroningenV7`; the site term
    defaults to ``s2s_mode="aleatory"`` (``s2s_p2p="consistent"``). Tree nodes: ``gmm_median``
    (4 joint median/tau levels, 0.1/0.3/0.3/0.3), ``gmm_phi_ss`` (0.5/0.5), and ``gmm_s2s``
    only with ``s2s_mode="epistemic"``.
    """

    name = "groningen-v6"
    reference = REFERENCE
    default_s2s_mode = "aleatory"
    rrup_kinks_km = RH_V6[1:]
    #: Magnitudes where the model's terms have a kink: the source-term hinges (4.7, 5.45; eq. 5.2) and
    #: the c2c variance's clip (3.6, 5.6) (:mod:`hra.integration.magnitudes`).
    magnitude_kinks = (3.6, 4.7, 5.45, 5.6)
    _site_columns = {"f2": "f2", "f3": "f3", "af_min": "Afmin", "af_max": "Afmax", "s1": "phiS2S_1",
                     "s2": "phi_S2S_2", "xl": "Sa_low", "xh": "Sa_high"}

    @staticmethod
    def _load_tables(model_dir, verify):
        return md.load_gmm_v6_tables(model_dir, verify=verify)

    @property
    def tree(self) -> LogicTree:
        nodes = [
            Node("gmm_median", md.MEDIAN_LEVELS, MEDIAN_WEIGHTS_V6),
            Node("gmm_phi_ss", md.PHI_SS_LEVELS, PHI_SS_WEIGHTS),
        ]
        if self.s2s_mode == "epistemic":
            nodes.append(Node("gmm_s2s", ("minus1.645", "zero", "plus1.645"), S2S_WEIGHTS, S2S_EPSILONS))
        return LogicTree(tuple(nodes))

    def median_weights(self, magnitude) -> np.ndarray:
        """V6 median weights do not depend on magnitude: (n_mag, 4) copies of 0.1/0.3/0.3/0.3."""
        m = np.atleast_1d(np.asarray(magnitude, float))
        return np.broadcast_to(np.asarray(MEDIAN_WEIGHTS_V6), (m.size, 4)).copy()

    def _ln_median_ref_g_at(self, idx, magnitude, rrup_km, level: int):
        c = self._median_coefs(level, idx)
        return ln_median_reference_cms2_v6(magnitude, rrup_km, c) - LN_TABLE_G

    def _tau_phi(self, branch) -> tuple[np.ndarray, np.ndarray]:
        it = _branch_index(branch, "gmm_median", md.MEDIAN_LEVELS)  # tau tied to the median level
        ip = _branch_index(branch, "gmm_phi_ss", md.PHI_SS_LEVELS)
        return self.tables.tau[it], self.tables.phi_ss[ip]

    def _sigma_key(self, branch) -> tuple[int, ...]:
        return (_branch_index(branch, "gmm_phi_ss", md.PHI_SS_LEVELS),)

    def _f1(self, c, magnitude, rrup_km):
        return af_linear_v6(magnitude, rrup_km, c)
