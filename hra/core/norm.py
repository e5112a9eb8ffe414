"""The norm on the Local Personal Risk (one place for the whole package).

The Besluit versterking gebouwen Groningen, art. 3, sets the norm for the Local Personal Risk (LPR)
of a building: an annual probability of death of at most 1e-5 per year (advice of the Meijdam
committee, 2015). Every module that compares an LPR with the norm imports it from here.
"""

from __future__ import annotations

__all__ = ["LPR_NORM_PER_YEAR"]

#: The norm on the Local Personal Risk (Besluit versterking gebouwen Groningen art. 3). [yr^-1]
LPR_NORM_PER_YEAR: float = 1e-5
