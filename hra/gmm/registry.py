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

    A ground-motion model gives, for an intensity measure, magnitudes, distances, a site and one
    branch of its logic tree, the distribution of ln IM at the surface as a Gaussian mixture
    (:meth:`hra.gmm.base.GroundMotionModel.ln_im_mixture`); its ``tree`` holds its logic-tree
    nodes and ``imts`` the intensity measures it provides. The Groningen models are described in
    docs/model-chain.md §3.

    Parameters
    ----------
    name
        Registry key: ``"groningen-v7"``, ``"groningen-v6"`` (public tables), ``"parametric"``,
        ``"demo"``, ``"dost2004-bommer2013"`` (closed forms); see
        :func:`hra.gmm.registry.available_gmms`.
    model_dir
        Folder of the public model tables (the upstream ``convert/res`` layout), for models that
        need them (default ``$HRA_MODEL_DIR``); ignored by the others. [folder path]
    **options
        Passed to the model's constructor, e.g. ``s2s_mode="aleatory"``, ``rupture="point"`` or
        ``verify=False`` for the Groningen models; ``c0, c1, c2, c3, tau, phi`` [ln g, ln units]
        for ``"parametric"``.

    Returns
    -------
    hra.gmm.base.GroundMotionModel
        The model, with ``name``, ``reference``, ``imts`` and ``tree``.

    Raises
    ------
    KeyError
        ``name`` is not registered; the message lists the available models.
    hra.inputs.modeldata.ModelDataError
        A Groningen model whose tables are missing or fail their SHA-256 check.

    Examples
    --------
    >>> import numpy as np
    >>> from hra.gmm import load_gmm
    >>> gmm = load_gmm("parametric", c0=-5.0, c1=1.2, c2=-1.5, tau=0.3, phi=0.5)
    >>> mix = gmm.ln_im_mixture("PGA", np.array([5.0]), np.array([10.0]), 1, {})
    >>> round(float(mix.mean.ravel()[0]), 4), round(float(mix.sd.ravel()[0]), 4)  # -5 + 6 - 1.5 ln 10, sqrt(0.09 + 0.25)
    (-2.4539, 0.5831)
    >>> [node.name for node in load_gmm("demo").tree.nodes]
    ['gmm_median', 'gmm_sigma', 'gmm_site']
    >>> v7 = load_gmm("groningen-v7")  # doctest: +SKIP
    >>> round(float(v7.median_sa_g(0.01, 5.0, 4.243, "CentralUpper")), 4)  # doctest: +SKIP
    0.095
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
