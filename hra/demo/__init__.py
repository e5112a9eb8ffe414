"""The embedded demo region: field outline, towns, site-response zones and synthetic buildings.

Everything in this package is written by this project (see :mod:`hra.demo.region`); it is meant
for demonstrations, tutorials and tests, not for risk statements about real buildings.
"""

from hra.demo.exposure import DEMO_TYPOLOGIES, synthetic_exposure, write_exposure
from hra.demo.groningen import DEMO_TO_V6_ZONE, V7_TYPOLOGIES, synthetic_exposure_groningen
from hra.demo.region import Town, field_outline, region_bounds, towns, zones

__all__ = [
    "DEMO_TO_V6_ZONE",
    "DEMO_TYPOLOGIES",
    "Town",
    "field_outline",
    "region_bounds",
    "V7_TYPOLOGIES",
    "synthetic_exposure",
    "synthetic_exposure_groningen",
    "towns",
    "write_exposure",
    "zones",
]
