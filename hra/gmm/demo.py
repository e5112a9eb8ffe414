"""The **demo** ground-motion model: illustrative coefficients written by this project.

NOT FOR DECISIONS. It mimics the structure of the Groningen GMM (Bommer et al. 2021) so that the
engine is exercised on every feature the real model needs, with made-up but plausible numbers:

Reference horizon (rock-like), ln of the IM "AvgSa" in g, R = R_hyp in km (>= 3):

    ln Y_ref = c0 + dmed + c1 (M - 4.75) + c2 (M - 4.75)^2 + (c3 + c4 (M - 4.75)) ln(R / 3) + c5 (R - 3)

    residual: tau (between-event) and phi (within-event), total sigma_ref = sqrt(tau^2 + phi^2)

Site-response zone z (ids 1..8, the demo region's zones), non-linear amplification that depends
on the realised reference motion Y_ref (g), with a motion-dependent site-to-site sigma:

    ln AF = clip( f1_z + dsite + f2_z ln((Y_ref + f3_z) / f3_z), ln 0.25, ln AFmax_z )
    phi_S2S(Y_ref) = s1_z + (s2_z - s1_z) clip( ln(Y_ref / xl) / ln(f3_z / xl), 0, 1 ),  xl = 0.005 g
    ln Y_surface = ln Y_ref + ln AF + phi_S2S(Y_ref) eps_S2S

The reference residual is integrated with Gauss-Hermite quadrature (``quadrature_points``
nodes); given a node, ln Y_surface is normal with sd phi_S2S(Y_ref), so the distribution is a
Gaussian mixture (hra.gmm.base). Logic tree: median level (3), sigma level (2), site level (2),
i.e. 12 branches. Intensity measures: "AvgSa" (used by the demo fragility set), "PGA" and
"SA(T)" at the ten V7 periods, from an illustrative spectral shape (SPECTRAL_SHAPE), for site
hazard and uniform hazard spectra.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from hra.gmm.base import GaussianMixture, GroundMotionModel
from hra.core.logictree import LogicTree, Node

#: Reference-horizon coefficients (illustrative).
REFERENCE = dict(c0=np.log(0.11), c1=1.0, c2=-0.10, c3=-1.60, c4=0.15, c5=-0.004)

#: Zone coefficients (illustrative): zone -> (f1, f2, f3_g, s1, s2, AFmax)
ZONES: dict[int, tuple[float, float, float, float, float, float]] = {
    1: (0.95, -0.30, 0.10, 0.30, 0.20, 4.0),   # Holocene clay on peat: strong weak-motion AF, marked non-linearity
    2: (0.70, -0.15, 0.20, 0.25, 0.18, 3.2),   # Pleistocene sand
    3: (0.85, -0.25, 0.12, 0.28, 0.20, 3.8),   # tidal-flat deposits
    4: (0.60, -0.10, 0.30, 0.22, 0.16, 2.8),   # glacial till (boulder clay)
    5: (1.05, -0.35, 0.08, 0.32, 0.22, 4.4),   # soft peat and clay
    6: (0.75, -0.20, 0.15, 0.26, 0.19, 3.5),   # channel fill
    7: (0.55, -0.08, 0.35, 0.20, 0.15, 2.6),   # cover sand
    8: (0.90, -0.28, 0.11, 0.29, 0.21, 3.9),   # marine clay
}
XL_G = 0.005
AF_MIN = 0.25

#: Illustrative spectral shape: ln(Sa(T) / PGA) of the reference median at the ten periods of the
#: Groningen GMM V7 [s]; AvgSa is their geometric mean, so ln Sa(T) = ln AvgSa + shape(T) - mean(shape).
SPECTRAL_SHAPE = {0.01: 0.0, 0.1: 0.55, 0.2: 0.85, 0.3: 0.80, 0.4: 0.65, 0.5: 0.50, 0.6: 0.35, 0.7: 0.22, 0.85: 0.05, 1.0: -0.10}
_SHAPE_MEAN = float(np.mean(list(SPECTRAL_SHAPE.values())))


def imt_offset(imt: str) -> float:
    """ln(median IM / median AvgSa) of the demo model for "AvgSa", "PGA" or "SA(T)"."""
    if imt == "AvgSa":
        return 0.0
    if imt == "PGA":
        return SPECTRAL_SHAPE[0.01] - _SHAPE_MEAN
    if imt.startswith("SA(") and imt.endswith(")"):
        t = float(imt[3:-1])
        if t in SPECTRAL_SHAPE:
            return SPECTRAL_SHAPE[t] - _SHAPE_MEAN
    raise KeyError(f"demo GMM has no IM {imt!r}; use AvgSa, PGA or SA(T) with T in {sorted(SPECTRAL_SHAPE)} s")

MEDIAN_NODE = Node("gmm_median", ("lower", "central", "upper"), (0.2, 0.6, 0.2), (-0.25, 0.0, 0.25))
SIGMA_NODE = Node("gmm_sigma", ("low", "high"), (0.5, 0.5))
SITE_NODE = Node("gmm_site", ("low", "high"), (0.5, 0.5), (-0.12, 0.12))
SIGMA_LEVELS = {0: (0.30, 0.45), 1: (0.40, 0.55)}  # (tau, phi)


def demo_reference_ln_median(magnitude, distance_km, dmed: float = 0.0) -> np.ndarray:
    """Reference-horizon median ln Y_ref [ln g] on the grid (M, R) -> (n_mag, n_dist)."""
    c = REFERENCE
    m = np.asarray(magnitude, dtype=float)[:, None] - 4.75
    r = np.maximum(np.asarray(distance_km, dtype=float)[None, :], 3.0)
    return c["c0"] + dmed + c["c1"] * m + c["c2"] * m**2 + (c["c3"] + c["c4"] * m) * np.log(r / 3.0) + c["c5"] * (r - 3.0)


def demo_ln_af(y_ref_g: np.ndarray, zone: int, dsite: float = 0.0) -> np.ndarray:
    """ln AF of zone ``zone`` at realised reference motion ``y_ref_g`` [g]."""
    f1, f2, f3, _, _, afmax = ZONES[zone]
    return np.clip(f1 + dsite + f2 * np.log((y_ref_g + f3) / f3), np.log(AF_MIN), np.log(afmax))


def demo_phi_s2s(y_ref_g: np.ndarray, zone: int) -> np.ndarray:
    """Site-to-site sd [ln units] at realised reference motion ``y_ref_g`` [g] (interpolated in ln Y)."""
    _, _, f3, s1, s2, _ = ZONES[zone]
    frac = np.clip(np.log(np.maximum(y_ref_g, 1e-300) / XL_G) / np.log(f3 / XL_G), 0.0, 1.0)
    return s1 + (s2 - s1) * frac


class DemoGMM(GroundMotionModel):
    """Illustrative Groningen-like model; see the module docstring. Not for decisions."""

    name = "demo"
    reference = "groningen-hra demo model (illustrative coefficients, not for decisions)"
    imts = ("AvgSa", "PGA") + tuple(f"SA({t:g})" for t in SPECTRAL_SHAPE)
    verified = False

    def __init__(self, quadrature_points: int = 20) -> None:
        self.quadrature_points = int(quadrature_points)

    @property
    def tree(self) -> LogicTree:
        return LogicTree((MEDIAN_NODE, SIGMA_NODE, SITE_NODE))

    @property
    def zones(self) -> np.ndarray:
        return np.array(sorted(ZONES), dtype=np.int64)

    def ln_im_mixture(self, imt: str, magnitude, distance_km, zone, branch: Mapping[str, int], wierde: bool = False) -> GaussianMixture:
        self.check_imt(imt)
        if zone not in ZONES:
            raise KeyError(f"demo GMM has no coefficients for zone {zone!r}; known zones: {sorted(ZONES)}")
        dmed = MEDIAN_NODE.values[branch.get("gmm_median", 1)]
        tau, phi = SIGMA_LEVELS[branch.get("gmm_sigma", 0)]
        dsite = SITE_NODE.values[branch.get("gmm_site", 0)]
        x, w = np.polynomial.hermite_e.hermegauss(self.quadrature_points)
        w = w / w.sum()
        sigma = np.hypot(tau, phi)
        ln_ref = demo_reference_ln_median(magnitude, distance_km, dmed + imt_offset(imt))[..., None] + sigma * x
        y_ref = np.exp(ln_ref)
        mean = ln_ref + demo_ln_af(y_ref, zone, dsite)
        sd = demo_phi_s2s(y_ref, zone)
        return GaussianMixture(mean, sd, np.broadcast_to(w, mean.shape).copy())


def _factory(model_dir=None, **options) -> GroundMotionModel:
    """Registry factory: ``load_gmm("demo", **options)`` (no model tables; ``model_dir`` is ignored)."""
    return DemoGMM(**options)


from hra.gmm.registry import register_gmm  # noqa: E402  (registers under its name at import, as the registry expects)

register_gmm("demo", _factory)
