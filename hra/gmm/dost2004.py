"""Dost et al. (2004) PGA/PGV model for the Netherlands, with the Bommer et al. (2013) adaptation.

A ground-motion model that OpenQuake also implements (``DostEtAl2004BommerAdaptation``), written
here independently from the published functional form and coefficients, so that the two engines
can be compared on the same problem (``benchmarks/openquake``).

Functional form (Bommer et al. 2013, eq. 1, extending Dost et al. 2004 to larger magnitudes):

    log10 Y = c0 + c1 M + c1e (M - 4.5)^2 + c2 R + c3 log10 R,     R = R_hyp [km]

with **Y = PGA in m/s^2** or **PGV in cm/s** (geometric-mean/larger horizontal component as in
Dost et al. 2004; OpenQuake labels it GMRotD100). The unit of PGA follows from the numbers: for
M 3.5 at R = 3 km the formula gives log10 Y = -0.21, i.e. Y = 0.62, which is a plausible PGA of a
Groningen M 3.5 event only in m/s^2 (0.063 g; the 2012 Huizinge M 3.6 event recorded 0.085 g),
not in cm/s^2 (6e-4 g). The engine works in g, so

    ln PGA[g] = ln(10) log10 PGA[m/s^2] - ln(9.80665)      (:data:`G_M_S2`)
    ln PGV[cm/s] = ln(10) log10 PGV[cm/s]

Aleatory variability (Bommer et al. 2013, Table 2): between-event ``tau`` and within-event
``phi`` in **log10 units**, total ``sigma`` (0.33, given to two decimals, so that
sqrt(tau^2 + phi^2) = 0.33005); converted to natural-log units by the factor ln(10). The
marginal distribution of the engine (:meth:`DostBommer2013.ln_im_mixture`) uses the published
total ``sigma`` (as OpenQuake's classical calculation does); event-based simulation
(:mod:`hra.eventbased.adapters`) draws ``tau`` and ``phi`` separately (as OpenQuake's event-based
calculation does). The 0.015 % difference of the two totals is below every tolerance used.

References
----------
Dost, B., van Eck, T. & Haak, H. (2004). Scaling of peak ground acceleration and peak ground
velocity recorded in the Netherlands. *Bollettino di Geofisica Teorica ed Applicata* 45(3),
153-168.

Bommer, J.J. et al. (2013). The adaptation of Dost et al. (2004) to larger magnitudes (the
quadratic magnitude term c1e and the tau/phi split), a report to NAM; cited as "Bommer et al.
(2013)" by OpenQuake's ``DostEtAl2004BommerAdaptation``. Coefficients as in that
OpenQuake GSIM (which ``benchmarks/openquake/compare.py`` checks; docs/openquake.md §3). See also Bommer, J.J., Dost, B., Edwards, B., Stafford, P.J.,
van Elk, J., Doornhof, D. & Ntinalexis, M. (2016). Developing an application-specific
ground-motion model for induced seismicity. *BSSA* 106(1), 158-173, doi:10.1785/0120150184.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from hra.gmm.base import GaussianMixture, GroundMotionModel
from hra.gmm.parametric import truncated_normal_nodes
from hra.core.logictree import LogicTree

#: Standard gravity [m/s^2] (CGPM 1901), converts PGA in m/s^2 to g.
G_M_S2 = 9.80665
LN10 = float(np.log(10.0))


@dataclass(frozen=True)
class DostCoefficients:
    """One row of the coefficient table (log10 units; see the module docstring)."""

    c0: float
    c1: float
    c1e: float
    c2: float  # [1/km]
    c3: float
    tau: float  # [log10 units]
    phi: float  # [log10 units]
    sigma: float  # [log10 units]
    unit: str  # unit of Y in the formula
    ln_to_engine: float  # added to ln Y to give the engine unit (ln g for PGA)


#: Bommer et al. (2013) adaptation of Dost et al. (2004).
COEFFICIENTS: dict[str, DostCoefficients] = {
    "PGA": DostCoefficients(-1.6090, 0.6140, -0.1116, -0.00139, -1.33, 0.1476, 0.2952, 0.33, "m/s2", -float(np.log(G_M_S2))),
    "PGV": DostCoefficients(-1.3972, 0.7105, -0.0829, -0.00139, -1.33, 0.1476, 0.2952, 0.33, "cm/s", 0.0),
}


def dost_log10_median(magnitude, distance_km, c: DostCoefficients) -> np.ndarray:
    """log10 of the median, Bommer et al. (2013) eq. 1, in the unit ``c.unit`` (m/s^2 or cm/s).

    Parameters
    ----------
    magnitude : array_like
        Local magnitude ML (Dost et al. 2004 regress on ML; Bommer et al. 2013 take ML = Mw). [-]
    distance_km : array_like
        Hypocentral distance, broadcast against ``magnitude``. [km]
    c : DostCoefficients
        The row of the IM.
    """
    m = np.asarray(magnitude, dtype=float)
    r = np.asarray(distance_km, dtype=float)
    return c.c0 + c.c1 * m + c.c1e * (m - 4.5) ** 2 + c.c2 * r + c.c3 * np.log10(r)


def dost_ln_median(imt: str, magnitude, distance_km) -> np.ndarray:
    """Natural log of the median in engine units: ln g for PGA, ln(cm/s) for PGV (broadcast)."""
    c = COEFFICIENTS[imt]
    return LN10 * dost_log10_median(magnitude, distance_km, c) + c.ln_to_engine


class DostBommer2013(GroundMotionModel):
    """Dost et al. (2004) with the Bommer et al. (2013) large-magnitude adaptation.

    No site terms (the model is for the recording sites of the KNMI network), no logic tree.
    ``truncation_sigma`` > 0 truncates the total residual (Gauss-Legendre components, as
    :class:`hra.gmm.parametric.ParametricGMM` does).
    """

    name = "dost2004-bommer2013"
    reference = ("Dost, van Eck & Haak (2004) BGTA 45(3):153-168, with the large-magnitude adaptation "
                 "of Bommer et al. (2013, report to NAM)")
    imts = ("PGA", "PGV")
    verified = True  # tests/test_oq_export.py checks hand values; benchmarks/openquake compares with OpenQuake

    def __init__(self, truncation_sigma: float = 0.0, quadrature_points: int = 24, imt: str = "PGA") -> None:
        if imt not in COEFFICIENTS:
            raise KeyError(f"{self.name} provides PGA and PGV, not {imt!r}")
        self.truncation_sigma = float(truncation_sigma)
        self.quadrature_points = int(quadrature_points)
        # the engine takes the fragility IM from imts[0]
        self.imts = (imt,) + tuple(i for i in COEFFICIENTS if i != imt)

    @property
    def tree(self) -> LogicTree:
        return LogicTree(())

    def sigma_ln(self, imt: str) -> tuple[float, float, float]:
        """(tau, phi, sigma) in natural-log units."""
        c = COEFFICIENTS[imt]
        return c.tau * LN10, c.phi * LN10, c.sigma * LN10

    def ln_im_mixture(self, imt: str, magnitude, distance_km, zone, branch: Mapping[str, int], wierde: bool = False) -> GaussianMixture:
        """Distribution of ln IM (ln g for PGA) on the grid ``magnitude x distance_km``."""
        self.check_imt(imt)
        mu = dost_ln_median(imt, np.asarray(magnitude, float)[:, None], np.asarray(distance_km, float)[None, :])[..., None]
        sigma = self.sigma_ln(imt)[2]
        if self.truncation_sigma <= 0:
            one = np.ones_like(mu)
            return GaussianMixture(mu, one * sigma, one)
        x, w = truncated_normal_nodes(self.truncation_sigma, self.quadrature_points)
        mean = mu + sigma * x
        return GaussianMixture(mean, np.zeros_like(mean), np.broadcast_to(w, mean.shape).copy())


def _factory(model_dir=None, **options) -> GroundMotionModel:
    return DostBommer2013(**options)


try:  # register under its name (hra.gmm.registry); harmless if the registry is absent
    from hra.gmm.registry import register_gmm

    register_gmm(DostBommer2013.name, _factory)
except ImportError:  # pragma: no cover
    pass
