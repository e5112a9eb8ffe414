"""The Python API (design.md §4 contract): ``load_config``, ``run``, ``demo_config``."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from hra.config import Config, config_from_dict, load_config  # noqa: F401  (re-exported)

log = logging.getLogger("hra")


def run(cfg: Config, progress: bool | None = None, write: bool = True) -> xr.Dataset:
    """Run the engine; returns the risk Dataset and writes it where ``[output]`` says.

    Output targets are checked *before* the computation, so a run that could not write its
    result fails at once, and nothing is half-written.
    """
    from hra import outputs
    from hra.integration.engine import compute

    out_path = cfg.resolve(cfg.output.path)
    csv_path = cfg.resolve(cfg.output.csv)
    gpkg_path = cfg.resolve(cfg.output.gpkg)
    if write:
        for p in (out_path, csv_path, gpkg_path):
            if p is not None:
                outputs._check_target(Path(p), cfg.output.overwrite)
    start = _dt.datetime.now(_dt.timezone.utc)
    res = compute(cfg, progress=progress)
    end = _dt.datetime.now(_dt.timezone.utc)
    prep = res.prep
    prov = outputs.provenance(
        cfg.sha256(), prep.files, cfg.run.seed, res.selection.realisations.n, res.selection.realisations.exact,
        start, end, config=cfg,
        extra={
            "ground_motion_model": prep.gmm.name, "ground_motion_reference": prep.gmm.reference,
            "ground_motion_verified": bool(prep.gmm.verified), "fragility_model": prep.fragility.name,
            "logic_tree": {n.name: dict(zip(n.labels, n.weights)) for n in prep.tree.nodes},
            "typology_uncertainty": cfg.run.typology_uncertainty,
            "timings_s": {k: round(v, 3) for k, v in res.timings.items()},
            "config_file": str(cfg.source_file) if cfg.source_file else None,
        },
    )
    b = prep.buildings
    cand, prob = typology_candidates(b)
    branches = realisation_branches(res) if res.realisations is not None else None
    ds = outputs.build_dataset(
        ids=b.ids, x=b.x, y=b.y, years=prep.years, mean=res.mean,
        quantiles={q: res.quantiles[:, :, i] for i, q in enumerate(cfg.run.quantiles)},
        zone=b.zone if prep.gmm.zones is not None else None, municipality=b.municipality,
        realisations=res.realisations, realisation_weight=res.realisation_weight, prov=prov,
        wierde=b.wierde, typology_candidates=cand, typology_probabilities=prob,
        realisation_branches=branches, nodes=[n.name for n in prep.tree.nodes],
    )
    if write and out_path is not None:
        outputs.write_dataset(ds, out_path, overwrite=cfg.output.overwrite)
        log.info("wrote %s", out_path)
    if write and csv_path is not None:
        outputs.write_csv_summary(ds, csv_path, overwrite=cfg.output.overwrite)
        log.info("wrote %s", csv_path)
    if write and gpkg_path is not None:
        from hra.review.export import write_gpkg

        write_gpkg(ds, gpkg_path, overwrite=cfg.output.overwrite)
        log.info("wrote %s", gpkg_path)
    return ds


def typology_candidates(b) -> tuple[np.ndarray, np.ndarray]:
    """(building, candidate) typology names (``""`` padding) and probabilities (0 padding)."""
    ti = np.asarray(b.typology_index)
    names = np.asarray(list(b.typologies) + [""], dtype=object)
    cand = names[np.where(ti >= 0, ti, len(b.typologies))].astype(str)
    return cand, np.where(ti >= 0, np.asarray(b.typology_prob, dtype=float), 0.0)


def realisation_branches(res) -> np.ndarray:
    """(realisation, node) branch labels of the stored realisations of an engine result.

    Monte Carlo: realisation r is draw r of the tree. Enumeration: stored slot ``u * K + k``
    (epistemic typology, K candidate slots) or ``u`` is distinct combination u of (source
    branch, model branches); the typology candidate of slot k is the building's k-th
    ``typology_candidate``.
    """
    prep, sel = res.prep, res.selection
    nodes = prep.tree.nodes
    n_keep = res.realisations.shape[2]
    if not sel.realisations.exact:
        idx = sel.realisations.index
    else:
        sizes = [n.size for n in prep.model_tree.nodes]
        model = np.stack(np.unravel_index(sel.combo_model, sizes), axis=1) if sizes else np.zeros((sel.combo_s.size, 0), np.int64)
        idx = np.concatenate([sel.combo_s[:, None], model], axis=1)
        per = n_keep // max(idx.shape[0], 1)
        idx = np.repeat(idx, per, axis=0)
    out = np.empty((n_keep, len(nodes)), dtype=object)
    for j, n in enumerate(nodes):
        out[:, j] = np.asarray(n.labels, dtype=object)[idx[:n_keep, j]]
    return out.astype(str)


#: Models of the demo region: "demo" (the illustrative demo models) or a top-level model preset.
DEMO_MODELS = ("demo", "groningen-v7", "groningen-v6")


def demo_model_dir(model: str, model_dir: str | os.PathLike | None = None) -> Path:
    """The model-table folder a Groningen demo needs: ``model_dir``, else ``$HRA_MODEL_DIR``.

    Raises :class:`hra.inputs.modeldata.ModelDataError` (a ``ValueError``) naming ``HRA_MODEL_DIR``,
    ``--model-dir`` and ``hra models fetch`` when neither is set, or when the folder lacks the tables.
    """
    from hra.inputs import modeldata as md

    version = {"groningen-v7": "V7", "groningen-v6": "V6"}[model]
    if model_dir is None and not os.environ.get(md.ENV_MODEL_DIR, "").strip():
        raise md.ModelDataError(
            f"the demo with model {model!r} runs the public Groningen model tables (GMM and FCM {version}), "
            f"which are not part of this package, and ${md.ENV_MODEL_DIR} is not set. Fix: export "
            f"{md.ENV_MODEL_DIR}=/path/to/convert/res (the folder holding V6/, V7/, TNO2020/), or pass "
            "--model-dir DIR (model_dir=... in Python); `hra models fetch DEST` downloads the tables "
            "(pinned upstream commit) where internet is available."
        )
    path = md.resolve_model_dir(model_dir)
    missing = md.check_model_dir(path, versions=(version,), strict=False)
    if missing:
        raise md.ModelDataError(
            f"model directory {str(path)!r} (from {'model_dir' if model_dir is not None else '$' + md.ENV_MODEL_DIR}) "
            f"does not hold the {version} tables the demo with model {model!r} needs:\n  " + "\n  ".join(missing)
            + "\nFix: point it at the upstream convert/res folder, or run `hra models fetch DEST`."
        )
    return path


def demo_config(n_buildings: int = 20_000, seed: int = 1, directory: str | os.PathLike | None = None,
                realisations: int | str = 1000, years: tuple[int, ...] | None = None, workers: int | None = None,
                output: str | os.PathLike | None = None, model: str = "demo",
                model_dir: str | os.PathLike | None = None) -> Config:
    """Config of the embedded demo region (illustrative models, not for decisions).

    Writes the demo inputs (rates, buildings, fragility CSVs and a ``run.toml``) into
    ``directory`` (default: a new temporary directory) and returns the validated config.
    The logic tree has 2 source x 6 Mmax x 12 GMM x 9 FCM = 1,296 branches.

    ``model="groningen-v7"`` (or ``"groningen-v6"``) runs the same region, source rates and Mmax
    branches with the public Groningen models instead: the top-level preset ``model =
    "groningen-v7"`` (GMM V7 x FCM V7, 72 x 9 branches, so 2 x 6 x 72 x 9 = 7,776 branches), and
    buildings with real V6 site-response zones, FCM V7 classes with typology uncertainty and
    wierden (:mod:`hra.demo.groningen`; no fragility CSV). The model tables come from
    ``model_dir`` (then written into ``run.toml``) or ``$HRA_MODEL_DIR``; without either a
    :class:`hra.inputs.modeldata.ModelDataError` says how to get them.
    """
    import tomli_w

    from hra.demo.exposure import synthetic_exposure, write_exposure
    from hra.demo.source import YEARS, write_demo_rates

    if model not in DEMO_MODELS:
        raise ValueError(f"model {model!r} is not a demo model; use one of {', '.join(DEMO_MODELS)}")
    groningen = model != "demo"
    path = demo_model_dir(model, model_dir) if groningen else None
    directory = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="hra-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    years = tuple(years or YEARS)
    write_demo_rates(directory / "rates.csv", years)
    if groningen:
        from hra.demo.groningen import synthetic_exposure_groningen

        write_exposure(synthetic_exposure_groningen(n_buildings, seed=seed), directory / "buildings.csv")
    else:
        from fragility.demo import CONSEQUENCE, PRESENCE_INSIDE, demo_fragility_table

        write_exposure(synthetic_exposure(n_buildings, seed=seed), directory / "buildings.csv")
        demo_fragility_table().to_csv(directory / "fragility.csv", index=False)
    data: dict = {"model": model} if groningen else {}
    data.update({
        "run": {"years": list(years), "seed": seed, "realisations": realisations, "quantiles": [0.5, 0.9]},
        "source": {
            "rates": "rates.csv", "cell_size_m": 1000.0, "m_min": 1.5, "depth_km": 3.0,
            "magnitude": {
                "b_value": 1.0,
                "m_max": [{"value": v, "weight": w} for v, w in
                          ((4.0, 0.27), (4.5, 0.405), (5.0, 0.1875), (5.5, 0.1075), (6.0, 0.025), (6.5, 0.005))],
            },
        },
    })
    if not groningen:
        data["ground_motion"] = {"model": "demo"}
    elif model_dir is not None:  # else the preset's GMM and FCM find the tables through $HRA_MODEL_DIR
        data["ground_motion"] = {"model_dir": str(path.resolve())}
    data["exposure"] = {"buildings": "buildings.csv"}
    if not groningen:
        data["fragility"] = {"curves": "fragility.csv", "presence_inside": PRESENCE_INSIDE,
                             "consequence": [{"factor": f, "weight": w} for f, w in CONSEQUENCE]}
    data["compute"] = {} if workers is None else {"workers": workers}
    if output is not None:
        data["output"] = {"path": str(Path(output).resolve()), "overwrite": True}
    with open(directory / "run.toml", "wb") as fh:
        tomli_w.dump(data, fh)
    return load_config(directory / "run.toml")


def building_lpr(cfg: Config, x_rd: float, y_rd: float, fragility, zone: int | None = None) -> dict[str, np.ndarray]:
    """LPR distribution (mean, P50, P90 per year) of one building with its own fragility.

    ``fragility`` has attributes ``median_g``, ``beta``, ``p_death_inside``, ``p_death_outside``
    (3 values each, CS1..CS3) and ``imt``; it replaces the typology curves of ``cfg`` while the
    source, ground-motion model and logic tree stay those of ``cfg``. Used by npr9998 to link a
    building's capacity to the 1e-5 norm.
    """
    import pandas as pd

    from hra.chain import make_gmm

    imt = make_gmm(cfg).imts[0]
    if getattr(fragility, "imt", imt) != imt:
        raise ValueError(
            f"the building fragility is defined on {fragility.imt!r} but the ground-motion model of this config "
            f"gives {imt!r}; derive the fragility on {imt!r}"
        )
    d = Path(tempfile.mkdtemp(prefix="hra-building-"))
    rows = []
    for k in range(3):
        rows.append(dict(typology="building", state=f"CS{k + 1}", median_g=float(fragility.median_g[k]),
                         beta=float(fragility.beta[k]), p_death=float(fragility.p_death_inside[k]),
                         p_death_outside=float(fragility.p_death_outside[k])))
    pd.DataFrame(rows).to_csv(d / "fragility.csv", index=False)
    b = dict(id="building", x=x_rd, y=y_rd, typology="building")
    if zone is not None:
        b["zone"] = int(zone)
    pd.DataFrame([b]).to_csv(d / "buildings.csv", index=False)
    data = cfg.model_dump()
    data["exposure"] = {"buildings": str(d / "buildings.csv")}
    data["fragility"] = dict(data["fragility"], curves=str(d / "fragility.csv"))
    data["output"] = {"path": None, "csv": None, "overwrite": False}
    data["compute"] = dict(data["compute"], workers=1, scheduler="synchronous", progress=False)
    one = Config.model_validate(data)
    ds = run(one, progress=False, write=False)
    out = {"year": ds["year"].values, "lpr_mean": ds["lpr_mean"].values[0]}
    for name in ds.data_vars:
        if name.startswith("lpr_p"):
            out[name] = ds[name].values[0]
    return out
