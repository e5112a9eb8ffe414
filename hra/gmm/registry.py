"""Registry of ground-motion models by name (no if/elif dispatch on versions).

``load_gmm(name, model_dir=None, **options)`` builds a model through the factory registered
under ``name``. Factories take ``model_dir`` (ignored by models without tables) and keyword
options, and return a :class:`hra.gmm.base.GroundMotionModel`.

Registered here: ``"groningen-v7"`` and ``"groningen-v6"`` (public Groningen tables from
``model_dir`` or ``$HRA_MODEL_DIR``).

**Other models register themselves**: ``hra/gmm/parametric.py`` and ``hra/gmm/demo.py`` call
``register_gmm("parametric", factory)`` / ``register_gmm("demo", factory)`` at import. A name
listed in :data:`LAZY_MODULES` but not yet registered is imported on first use, so
``load_gmm("parametric")`` works without importing that module first.
"""

from __future__ import annotations

import importlib
import os
from typing import Callable

from hra.gmm.base import GroundMotionModel

#: name -> factory(model_dir=None, **options) -> GroundMotionModel
GMM_REGISTRY: dict[str, Callable[..., GroundMotionModel]] = {}

#: Modules that register the named model when imported (the place for "parametric" and "demo").
LAZY_MODULES: dict[str, str] = {
    "parametric": "hra.gmm.parametric",
    "demo": "hra.gmm.demo",
    "dost2004-bommer2013": "hra.gmm.dost2004",
}


def register_gmm(name: str, factory: Callable[..., GroundMotionModel], overwrite: bool = False) -> None:
    """Register ``factory`` under ``name``; refuses to replace an entry unless ``overwrite``."""
    if not callable(factory):
        raise TypeError(f"factory for {name!r} must be callable")
    if name in GMM_REGISTRY and not overwrite and GMM_REGISTRY[name] is not factory:
        raise ValueError(f"a ground-motion model named {name!r} is already registered; pass overwrite=True to replace it")
    GMM_REGISTRY[name] = factory


def available_gmms() -> list[str]:
    """Registered names plus the lazily importable ones."""
    return sorted(set(GMM_REGISTRY) | set(LAZY_MODULES))


def load_gmm(name: str, model_dir: str | os.PathLike | None = None, **options) -> GroundMotionModel:
    """Build the ground-motion model registered as ``name``.

    Parameters
    ----------
    name
        Registry key, e.g. ``"groningen-v7"``, ``"groningen-v6"``, ``"parametric"``, ``"demo"``.
    model_dir
        Directory of model tables, for models that need them (default ``$HRA_MODEL_DIR``).
    **options
        Passed to the factory (e.g. ``s2s_mode="aleatory"`` for the Groningen models).
    """
    if name not in GMM_REGISTRY and name in LAZY_MODULES:
        try:
            importlib.import_module(LAZY_MODULES[name])
        except ModuleNotFoundError as exc:
            raise KeyError(
                f"ground-motion model {name!r} is provided by module {LAZY_MODULES[name]}, which is not available ({exc})"
            ) from None
    if name not in GMM_REGISTRY:
        raise KeyError(f"unknown ground-motion model {name!r}; available: {available_gmms()}")
    return GMM_REGISTRY[name](model_dir=model_dir, **options)


def _groningen_v7(model_dir=None, **options) -> GroundMotionModel:
    from hra.gmm.groningen_v7 import GroningenV7

    return GroningenV7(model_dir, **options)


def _groningen_v6(model_dir=None, **options) -> GroundMotionModel:
    from hra.gmm.groningen_v6 import GroningenV6

    return GroningenV6(model_dir, **options)


register_gmm("groningen-v7", _groningen_v7)
register_gmm("groningen-v6", _groningen_v6)
