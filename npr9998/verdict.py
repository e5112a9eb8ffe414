"""The risk verdict of one building: its LPR per year against the norm.

Shared by :mod:`npr9998.assess` (which computes it with the HRA engine) and
:mod:`npr9998.decision` (which turns it into a normbesluit on basis ``"lpr_ratio"``); it lies
below both so that imports only go down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hra.core.norm import LPR_NORM_PER_YEAR

__all__ = ["NORM_LPR_PER_YR", "RiskVerdict"]

#: The LPR norm (Meijdam committee 2015; Besluit versterking gebouwen Groningen art. 3), from
#: :mod:`hra.core.norm`. [1/yr]
NORM_LPR_PER_YR = LPR_NORM_PER_YEAR


@dataclass(frozen=True)
class RiskVerdict:
    """LPR of a building per year, compared with the norm.

    Attributes
    ----------
    years
        Years of the HRA run.
    lpr_mean, lpr_p50, lpr_p90
        Mean and quantiles of the LPR per year (over the epistemic logic tree). [1/yr]
    norm_per_yr
        The norm. [1/yr]
    """

    years: tuple[int, ...]
    lpr_mean: tuple[float, ...]
    lpr_p50: tuple[float, ...]
    lpr_p90: tuple[float, ...]
    norm_per_yr: float = NORM_LPR_PER_YR

    @property
    def lpr_mean_max(self) -> float:
        """Largest mean LPR over the years. [1/yr]"""
        return max(self.lpr_mean)

    @property
    def governing_year(self) -> int:
        """Year of the largest mean LPR."""
        return self.years[int(np.argmax(self.lpr_mean))]

    @property
    def lpr_ratio(self) -> float:
        """lpr_mean_max / norm. [-]"""
        return self.lpr_mean_max / self.norm_per_yr

    @property
    def voldoet(self) -> bool:
        """True when the mean LPR is <= the norm in every year."""
        return self.lpr_mean_max <= self.norm_per_yr

    @property
    def p90_exceeds(self) -> bool:
        """True when the P90 LPR exceeds the norm in some year."""
        return max(self.lpr_p90) > self.norm_per_yr

    @property
    def classification(self) -> str:
        """``"verhoogd"`` (mean > norm), ``"licht verhoogd"`` (P90 > norm) or ``"normaal"``.

        Per building and without the horizons of the risk-profile rules (docs/profiles.md), which
        the risk-profile code applies over the whole run.
        """
        if not self.voldoet:
            return "verhoogd"
        if self.p90_exceeds:
            return "licht verhoogd"
        return "normaal"

    def to_dict(self) -> dict:
        return {
            "years": list(self.years),
            "lpr_mean": list(self.lpr_mean),
            "lpr_p50": list(self.lpr_p50),
            "lpr_p90": list(self.lpr_p90),
            "norm_per_yr": self.norm_per_yr,
            "lpr_mean_max": self.lpr_mean_max,
            "governing_year": self.governing_year,
            "lpr_ratio": self.lpr_ratio,
            "voldoet": self.voldoet,
            "p90_exceeds": self.p90_exceeds,
            "classification": self.classification,
        }
