"""The parametric ground-motion model of docs/lpr.md §5 (for tests and simple studies).

    ln IM[g] = c0 + c1 M + c2 ln R_hyp + c3 R_hyp,    residual ~ N(0, tau^2 + phi^2)

No site zones, no logic tree. Untruncated, the distribution of ln IM is one Gaussian (the closed
form of docs/lpr.md §5 is then exact). With ``truncation_sigma = T > 0`` the standard-normal
residual is truncated to [-T, T] and renormalised; it is integrated with ``quadrature_points``
Gauss-Legendre nodes (components of zero width).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy.special import ndtr

from hra.gmm.base import GaussianMixture, GroundMotionModel
from hra.core.logictree import LogicTree


def parametric_ln_median(magnitude, distance_km, c0: float, c1: float, c2: float, c3: float) -> np.ndarray:
    """Median ln IM [ln g] = c0 + c1 M + c2 ln R + c3 R on the grid (M, R) -> (n_mag, n_dist)."""
    m = np.asarray(magnitude, dtype=float)[:, None]
    r = np.asarray(distance_km, dtype=float)[None, :]
    return c0 + c1 * m + c2 * np.log(r) + c3 * r


def truncated_normal_nodes(truncation: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes x and weights w on [-T, T] for the standard normal truncated there.

    ``sum w f(x)`` approximates E[f(Z) | |Z| <= T]; the weights sum to 1.
    """
    x, w = np.polynomial.legendre.leggauss(n)
    x = x * truncation
    w = w * truncation * np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi)
    mass = ndtr(truncation) - ndtr(-truncation)
    return x, w / mass


class ParametricGMM(GroundMotionModel):
    """The parametric model of docs/lpr.md §5. Reference: this project (illustrative functional form)."""

    name = "parametric"
    reference = "docs/lpr.md §5 of this project: ln IM = c0 + c1 M + c2 ln R + c3 R (illustrative)"
    verified = True

    def __init__(self, c0: float, c1: float, c2: float, c3: float = 0.0, tau: float = 0.3, phi: float = 0.5,
                 truncation_sigma: float = 0.0, quadrature_points: int = 24, imt: str = "PGA") -> None:
        self.c0, self.c1, self.c2, self.c3 = float(c0), float(c1), float(c2), float(c3)
        self.tau, self.phi = float(tau), float(phi)
        self.truncation_sigma = float(truncation_sigma)
        self.quadrature_points = int(quadrature_points)
        self.imts = (imt,)

    @property
    def sigma(self) -> float:
        """Total standard deviation sqrt(tau^2 + phi^2) [ln units]."""
        return float(np.hypot(self.tau, self.phi))

    @property
    def tree(self) -> LogicTree:
        return LogicTree(())

    def ln_im_mixture(self, imt: str, magnitude, distance_km, zone, branch: Mapping[str, int], wierde: bool = False) -> GaussianMixture:
        self.check_imt(imt)
        mu = parametric_ln_median(magnitude, distance_km, self.c0, self.c1, self.c2, self.c3)[..., None]
        if self.truncation_sigma <= 0:
            one = np.ones_like(mu)
            return GaussianMixture(mu, one * self.sigma, one)
        x, w = truncated_normal_nodes(self.truncation_sigma, self.quadrature_points)
        mean = mu + self.sigma * x
        return GaussianMixture(mean, np.zeros_like(mean), np.broadcast_to(w, mean.shape).copy())


def _factory(model_dir=None, **options) -> GroundMotionModel:
    """Registry factory: ``load_gmm("parametric", **options)`` (no model tables; ``model_dir`` is ignored)."""
    return ParametricGMM(**options)


from hra.gmm.registry import register_gmm  # noqa: E402  (registers under its name at import, as the registry expects)

register_gmm("parametric", _factory)
