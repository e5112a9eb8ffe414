"""The embedded demo region: field outline, towns, site-response zones and synthetic buildings.

Everything in this package is written by this project (see :mod:`hra.demo.region`); it is meant
for demonstrations, tutorials and tests, not for risk statements about real buildings.
"""

from hra.demo.exposure import DEMO_TYPOLOGIES, synthetic_exposure, write_exposure
from hra.demo.region import Town, field_outline, region_bounds, towns, zones

__all__ = [
    "DEMO_TYPOLOGIES",
    "Town",
    "field_outline",
    "region_bounds",
    "synthetic_exposure",
    "towns",
    "write_exposure",
    "zones",
]
