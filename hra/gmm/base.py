"""The interface every ground-motion model implements for the engine.

The engine never knows a model's equations. For a site-response zone and one combination of the
model's logic-tree branches it asks, on a grid of magnitudes and hypocentral distances, for the
distribution of the natural log of each intensity measure (IM) at the building's site (surface,
site amplification included, in g), written as a **Gaussian mixture**:

    ln IM | (M, R_hyp, zone, branch)  ~  sum_q w_q * Normal(mean_q, sd_q^2)

* a plain lognormal GMM is one component (``mean = ln median``, ``sd = sigma``), which keeps
  the closed form exact;
* a model whose site amplification depends on the realised reference motion (non-linear AF,
  motion-dependent phi_S2S) integrates the reference residual by quadrature: one component per
  quadrature node, ``sd`` the residual scatter left once the node is fixed;
* finite-rupture distance uncertainty, truncation, epistemic sub-branches handled as aleatory,
  all fit the same form (more components).

A lognormal fragility curve ``P(LS | IM) = Phi((ln IM - ln theta) / beta)`` then integrates in
closed form per component: ``sum_q w_q Phi((mean_q - ln theta) / sqrt(sd_q^2 + beta^2))``. No
histogram of IM values is ever built, so the tables carry no Monte-Carlo noise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from hra.core.logictree import LogicTree

#: Conversion of accelerations: 1 g = 980.665 cm/s^2 (the Groningen tables use 981).
G_CM_S2 = 980.665


@dataclass(frozen=True)
class GaussianMixture:
    """Distribution of ln IM on a (magnitude, distance) grid.

    Attributes
    ----------
    mean
        Component means of ln IM [ln g], shape ``(n_mag, n_dist, n_comp)``.
    sd
        Component standard deviations [ln units], same shape, >= 0.
    weight
        Component weights, same shape; they sum to 1 over the last axis.
    """

    mean: np.ndarray
    sd: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        if not (self.mean.shape == self.sd.shape == self.weight.shape) or self.mean.ndim != 3:
            raise ValueError(
                "GaussianMixture arrays must share one 3-D shape (n_mag, n_dist, n_comp); got "
                f"{self.mean.shape}, {self.sd.shape}, {self.weight.shape}"
            )

    @property
    def n_components(self) -> int:
        return int(self.mean.shape[-1])

    def check(self, atol: float = 1e-9) -> None:
        s = self.weight.sum(axis=-1)
        if not np.allclose(s, 1.0, atol=atol):
            raise ValueError(f"mixture weights do not sum to 1 (range {s.min()}..{s.max()})")
        if np.any(self.sd < 0) or not np.all(np.isfinite(self.mean)):
            raise ValueError("mixture has negative sd or non-finite means")

    def cdf(self, ln_im: float | np.ndarray) -> np.ndarray:
        """P(ln IM <= ln_im) on the grid (numpy reference implementation, for tests)."""
        from scipy.special import ndtr

        x = np.asarray(ln_im, dtype=float)[..., None, None, None]
        sd = np.where(self.sd > 0, self.sd, 1e-300)
        return np.sum(self.weight * ndtr((x - self.mean) / sd), axis=-1)


class GroundMotionModel(ABC):
    """Base class of ground-motion models used by the engine.

    Subclasses declare:

    * ``name``: registry key (``"parametric"``, ``"demo"``, ``"groningen-v7"``, ...);
    * ``reference``: publication (with DOI where there is one) or "illustrative";
    * ``imts``: the intensity measures they can give (e.g. ``("PGA",)`` or ``("AvgSa", "PGA")``);
    * ``tree``: their logic tree (a :class:`hra.core.logictree.LogicTree`; one-branch nodes if none);
    * ``zones``: the site-response zone ids they know, or ``None`` if site-independent;
    * ``verified``: False warns users that no verification table covers the model.
    """

    name: str = "base"
    reference: str = ""
    imts: tuple[str, ...] = ()
    verified: bool = False

    @property
    @abstractmethod
    def tree(self) -> LogicTree: ...

    @property
    def zones(self) -> np.ndarray | None:
        return None

    @abstractmethod
    def ln_im_mixture(
        self,
        imt: str,
        magnitude: np.ndarray,
        distance_km: np.ndarray,
        zone: int | None,
        branch: Mapping[str, int],
    ) -> GaussianMixture:
        """Distribution of ln IM [ln g] at the site, on the grid ``magnitude x distance_km``.

        Parameters
        ----------
        imt
            One of ``self.imts``.
        magnitude
            Magnitudes, shape ``(n_mag,)``.
        distance_km
            Hypocentral distances, shape ``(n_dist,)``. [km]
        zone
            Site-response zone id (``None`` for site-independent models).
        branch
            Branch index per node name of ``self.tree``.
        """

    def check_imt(self, imt: str) -> None:
        if imt not in self.imts:
            raise KeyError(f"ground-motion model {self.name!r} does not provide IM {imt!r}; it provides {self.imts}")
