"""Our ground-motion models as OpenQuake GSIMs (optional; imports openquake; never imported by hra).

Three hazardlib GMPE classes, named with the project prefix so that they can never replace a
built-in GSIM (OpenQuake registers GSIMs by class name, docs/openquake.md §2):

* ``GroningenHraDost2004``: Dost et al. (2004) PGA/PGV with the Bommer et al. (2013) adaptation,
  computed by :mod:`hra.gmm.dost2004` (so OpenQuake runs exactly our equations and coefficients);
* ``GroningenHraDemo``: the **reference-horizon part** of our demo model
  (:func:`hra.gmm.demo.demo_reference_ln_median`, tau and phi of the sigma branch) for AvgSA, PGA
  and SA(T) at the demo periods. The zone amplification is not included (OpenQuake site
  parameters have no free-form zone; see docs/openquake.md §2).
  Job parameters ``gmm_median`` (0, 1, 2 = lower, central, upper) and ``gmm_sigma`` (0, 1)
  select the branches, e.g. ``[GroningenHraDemo]\\ngmm_median = 2`` in a GSIM logic tree;
* ``GroningenHraV7Reference``: the **reference-horizon (NS_B) part of GMM-V7** (Bommer et al.
  2021) computed by :class:`hra.gmm.groningen_v7.GroningenV7` (its public methods
  ``ln_median_sa_g`` and ``sigma_components``): median Sa (geometric-mean component, ln g) for
  SA(T) at 0.01-1 s (log-T interpolation between the 10 tabulated periods, no extrapolation) and
  PGA (= Sa(0.01 s)), with tau and phi_SS; distance R_rup. Job parameters ``gmm_median`` (0..3 =
  Lower, CentralLower, CentralUpper, Upper; default 1), ``gmm_tau`` (0..2 = Lower, Central,
  Upper; default 1), ``gmm_phi_ss`` (0..1; default 0), ``component`` (``"geometric_mean"``,
  default: sigma^2 = tau^2 + phi_SS^2, the hazard component; ``"arbitrary"``: adds the
  component-to-component variance of Stafford et al. (2019) to the within-event part, phi^2 =
  phi_SS^2 + sigma_c2c^2(M, R_rup, T), the component the fragility uses) and ``model_dir`` (the
  public model tables; default ``$HRA_MODEL_DIR``; OpenQuake cuts an absolute path given in a
  GSIM logic tree down to its basename, so in a job set ``$HRA_MODEL_DIR`` instead). The zone
  amplification (non-linear, not lognormal) is not included, as for the demo model. The
  magnitude-dependent median-branch weights w(M) (eq. 9.8) cannot be expressed in an OpenQuake
  GSIM logic tree (its weights are constants): use the four median branches with the weights of
  one magnitude, or one branch.

Use in OpenQuake (its own venv, with this project installed: ``pip install --no-deps -e .``)::

    export OQ_IMPORT_PATH=hra.openquake.gsim      # OpenQuake imports the module and registers the classes
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

#: GMM-V7 period used as PGA. [s]
_V7_PGA_PERIOD = 0.01
#: Loaded GMM-V7 models by resolved table directory (the GSIM instances keep only the path, so
#: that they pickle small into OpenQuake's worker processes).
_V7_MODELS: dict = {}

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


def _v7_model(model_dir):
    """The :class:`hra.gmm.groningen_v7.GroningenV7` of ``model_dir`` (``None``: $HRA_MODEL_DIR), cached."""
    from hra.inputs import modeldata as md
    from hra.gmm.groningen_v7 import GroningenV7

    key = str(md.resolve_model_dir(model_dir).resolve())
    if key not in _V7_MODELS:
        _V7_MODELS[key] = GroningenV7(key)
    return _V7_MODELS[key]


def _v7_period(imt) -> float:
    """Period [s] of an OpenQuake IMT for GMM-V7: PGA -> 0.01 s; SA(T) with 0.01 <= T <= 1 s."""
    s = imt.string
    if s == "PGA":
        return _V7_PGA_PERIOD
    if s.startswith("SA("):
        t = float(imt.period)
        if not _V7_PGA_PERIOD - 1e-9 <= t <= 1.0 + 1e-9:
            raise ValueError(f"GroningenHraV7Reference covers SA(T) for 0.01 <= T <= 1 s only; got {s}")
        return t
    raise ValueError(f"GroningenHraV7Reference has no IMT {s} (PGA and SA(0.01..1) only)")


def _v7_compute(imts, ctx, mean, sig, tau, phi, model_dir, branch, arbitrary):
    gmm = _v7_model(model_dir)
    mag = np.asarray(ctx.mag, float)
    rrup = np.asarray(ctx.rrup, float)
    for m, imt in enumerate(imts):
        t = _v7_period(imt)
        mean[m] = gmm.ln_median_sa_g(t, mag, rrup, branch)  # ln g, geometric mean, NS_B horizon
        sc = gmm.sigma_components(t, mag, rrup, branch)
        tau[m] = sc["tau"]
        if arbitrary:  # c2c variance as part of the within-event (record-to-record) variability
            phi[m] = np.hypot(sc["phi_ss"], sc["sigma_c2c"])
            sig[m] = sc["sigma_arbitrary"]
        else:
            phi[m] = sc["phi_ss"]
            sig[m] = sc["sigma_gm"]


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


class GroningenHraV7Reference(GMPE):
    """GMM-V7 (Bommer et al. 2021) at the NS_B reference horizon: median Sa [ln g] and tau/phi_SS.

    Computed by :class:`hra.gmm.groningen_v7.GroningenV7` from the public tables (``model_dir`` or
    ``$HRA_MODEL_DIR``); see the module docstring for the job parameters. Distance: R_rup [km].
    """

    DEFINED_FOR_TECTONIC_REGION_TYPE = const.TRT.INDUCED
    DEFINED_FOR_INTENSITY_MEASURE_TYPES = {PGA, SA}
    DEFINED_FOR_INTENSITY_MEASURE_COMPONENT = const.IMC.GEOMETRIC_MEAN
    DEFINED_FOR_STANDARD_DEVIATION_TYPES = {const.StdDev.TOTAL, const.StdDev.INTER_EVENT, const.StdDev.INTRA_EVENT}
    REQUIRES_SITES_PARAMETERS = set()
    REQUIRES_RUPTURE_PARAMETERS = {"mag"}
    REQUIRES_DISTANCES = {"rrup"}

    def __init__(self, gmm_median=1, gmm_tau=1, gmm_phi_ss=0, component="geometric_mean", model_dir=None, **kwargs):
        super().__init__(**kwargs)
        if component not in ("geometric_mean", "arbitrary"):
            raise ValueError(f"component must be 'geometric_mean' or 'arbitrary', got {component!r}")
        for name, value, n in (("gmm_median", gmm_median, 4), ("gmm_tau", gmm_tau, 3), ("gmm_phi_ss", gmm_phi_ss, 2)):
            if not 0 <= int(value) < n:
                raise ValueError(f"{name} must be an index 0..{n - 1}, got {value!r}")
        self.branch = {"gmm_median": int(gmm_median), "gmm_tau": int(gmm_tau), "gmm_phi_ss": int(gmm_phi_ss)}
        self.component = component
        self.model_dir = None if model_dir is None else str(model_dir)
        _v7_model(self.model_dir)  # fail early (missing or altered tables)

    def compute(self, ctx: np.recarray, imts, mean, sig, tau, phi):
        _v7_compute(imts, ctx, mean, sig, tau, phi, self.model_dir, self.branch, self.component == "arbitrary")
