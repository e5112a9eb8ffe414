"""Our ground-motion models as OpenQuake GSIMs (optional; imports openquake; never imported by hra).

Two hazardlib GMPE classes, named with the project prefix so that they can never replace a
built-in GSIM (OpenQuake registers GSIMs by class name, ``shared/openquake-peer.md`` §5):

* ``GroningenHraDost2004``: Dost et al. (2004) PGA/PGV with the Bommer et al. (2013) adaptation,
  computed by :mod:`hra.gmm.dost2004` (so OpenQuake runs exactly our equations and coefficients);
* ``GroningenHraDemo``: the **reference-horizon part** of our demo model
  (:func:`hra.gmm.demo.demo_reference_ln_median`, tau and phi of the sigma branch) for AvgSA, PGA
  and SA(T) at the demo periods. The zone amplification is not included (OpenQuake site
  parameters have no free-form zone; see openquake-peer.md §5 for the open design question).
  Job parameters ``gmm_median`` (0, 1, 2 = lower, central, upper) and ``gmm_sigma`` (0, 1)
  select the branches, e.g. ``[GroningenHraDemo]\\ngmm_median = 2`` in a GSIM logic tree.

Use in OpenQuake (its own venv, with this project installed: ``pip install --no-deps -e .``)::

    export OQ_IMPORT_PATH=hra.openquake      # OpenQuake imports the module and registers the classes
    oq engine --run job.ini                  # gsim logic tree: <uncertaintyModel>GroningenHraDost2004</uncertaintyModel>

or, in Python, ``import hra.openquake`` and instantiate the classes. hazardlib's rules for GSIM
classes apply: helpers are module-level functions, ``compute`` carries the ``ctx: np.recarray``
annotation (so this module must not use ``from __future__ import annotations``, which would turn
it into a string that hazardlib rejects), single inheritance.

References: Dost, van Eck & Haak (2004), BGTA 45(3):153-168; Bommer et al. (2013) (see
:mod:`hra.gmm.dost2004`); this project's demo model (:mod:`hra.gmm.demo`, illustrative).
"""


import numpy as np
from openquake.hazardlib import const
from openquake.hazardlib.gsim.base import GMPE
from openquake.hazardlib.imt import PGA, PGV, SA, AvgSA

from hra.gmm import demo as _demo
from hra.gmm import dost2004 as _dost

#: OpenQuake IMT string -> our demo IMT name
_DEMO_IMT = {"AvgSA": "AvgSa", "PGA": "PGA"}


def _dost_compute(imts, ctx, mean, sig, tau, phi, sigma_scale):
    for m, imt in enumerate(imts):
        name = imt.string
        c = _dost.COEFFICIENTS[name]
        mean[m] = _dost.dost_ln_median(name, ctx.mag, ctx.rhypo)  # ln g (PGA), ln cm/s (PGV)
        sig[m] = sigma_scale * c.sigma * _dost.LN10
        tau[m] = sigma_scale * c.tau * _dost.LN10
        phi[m] = sigma_scale * c.phi * _dost.LN10


def _demo_imt(imt) -> str:
    s = imt.string
    if s in _DEMO_IMT:
        return _DEMO_IMT[s]
    if s.startswith("SA("):
        return f"SA({float(imt.period):g})"
    if s.startswith("AvgSA"):
        return "AvgSa"
    raise KeyError(f"GroningenHraDemo has no IMT {s}")


def _demo_compute(imts, ctx, mean, sig, tau, phi, median_branch, sigma_branch):
    dmed = _demo.MEDIAN_NODE.values[median_branch]
    t, p = _demo.SIGMA_LEVELS[sigma_branch]
    mag = np.asarray(ctx.mag, float)
    r = np.asarray(ctx.rhypo, float)
    umag, inv = np.unique(mag, return_inverse=True)
    for m, imt in enumerate(imts):
        off = _demo.imt_offset(_demo_imt(imt))
        mu = np.empty(mag.size)
        for i, mm in enumerate(umag):  # contexts come grouped by rupture: few distinct magnitudes
            sel = inv.reshape(-1) == i
            mu[sel] = _demo.demo_reference_ln_median([mm], r[sel], dmed + off)[0]
        mean[m] = mu
        tau[m] = t
        phi[m] = p
        sig[m] = np.hypot(t, p)


class GroningenHraDost2004(GMPE):
    """Dost et al. (2004) / Bommer et al. (2013) PGA [g] and PGV [cm/s], R_hyp; from hra.gmm.dost2004."""

    DEFINED_FOR_TECTONIC_REGION_TYPE = const.TRT.INDUCED
    DEFINED_FOR_INTENSITY_MEASURE_TYPES = {PGA, PGV}
    DEFINED_FOR_INTENSITY_MEASURE_COMPONENT = const.IMC.GMRotD100
    DEFINED_FOR_STANDARD_DEVIATION_TYPES = {const.StdDev.TOTAL, const.StdDev.INTER_EVENT, const.StdDev.INTRA_EVENT}
    REQUIRES_SITES_PARAMETERS = set()
    REQUIRES_RUPTURE_PARAMETERS = {"mag"}
    REQUIRES_DISTANCES = {"rhypo"}

    def __init__(self, sigma_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.sigma_scale = float(sigma_scale)

    def compute(self, ctx: np.recarray, imts, mean, sig, tau, phi):
        _dost_compute(imts, ctx, mean, sig, tau, phi, self.sigma_scale)


class GroningenHraDemo(GMPE):
    """Reference-horizon part of the groningen-hra demo model (illustrative, not for decisions)."""

    DEFINED_FOR_TECTONIC_REGION_TYPE = const.TRT.INDUCED
    DEFINED_FOR_INTENSITY_MEASURE_TYPES = {PGA, SA, AvgSA}
    DEFINED_FOR_INTENSITY_MEASURE_COMPONENT = const.IMC.GEOMETRIC_MEAN
    DEFINED_FOR_STANDARD_DEVIATION_TYPES = {const.StdDev.TOTAL, const.StdDev.INTER_EVENT, const.StdDev.INTRA_EVENT}
    REQUIRES_SITES_PARAMETERS = set()
    REQUIRES_RUPTURE_PARAMETERS = {"mag"}
    REQUIRES_DISTANCES = {"rhypo"}

    def __init__(self, gmm_median=1, gmm_sigma=0, **kwargs):
        super().__init__(**kwargs)
        self.gmm_median = int(gmm_median)
        self.gmm_sigma = int(gmm_sigma)

    def compute(self, ctx: np.recarray, imts, mean, sig, tau, phi):
        _demo_compute(imts, ctx, mean, sig, tau, phi, self.gmm_median, self.gmm_sigma)
