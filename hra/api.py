"""The Python API (docs/architecture.md §4 contract): ``load_config``, ``run``, ``demo_config``."""

from __future__ import annotations

import atexit
import datetime as _dt
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from hra.config import Config, config_from_dict, load_config  # noqa: F401  (re-exported)

log = logging.getLogger("hra")


def run(cfg: Config, progress: bool | None = None, write: bool = True) -> xr.Dataset:
    """Compute the Local Personal Risk of every building and year; write it where ``[output]`` says.

    The LPR of each building is computed per logic-tree realisation by quadrature (docs/lpr.md)
    and reduced to the exact logic-tree mean and weighted quantiles. Output targets are checked
    *before* the computation, so a run that could not write its result fails at once; files are
    written to a temporary path and renamed, so nothing is half-written.

    Faults: the outputs (zarr or netCDF, CSV, GeoPackage) are committed as one set
    (:func:`write_outputs`): a run killed at any moment leaves the complete earlier set or,
    once the next run or reader rolls its commit journal forward, the complete new one. Each
    finished chunk of buildings is saved beside the first output (``.<name>.partial/``, with
    ``[compute] resume = true``, the default), so a killed run restarted with the same config,
    inputs and code computes only the chunks it had not finished (:mod:`hra.integration.checkpoint`).

    Parameters
    ----------
    cfg
        Validated configuration (:func:`hra.load_config`, :func:`hra.demo_config`).
    progress
        Show a progress bar; ``None`` (default): on a terminal only, or as ``[compute] progress``.
    write
        Write the Dataset to ``[output] path`` (zarr or netCDF) and the CSV summary to
        ``[output] csv`` where the config sets them; ``False`` only returns it.

    Returns
    -------
    xarray.Dataset
        The risk Dataset (docs/architecture.md §4.1): dims ``building``, ``year``; coordinates
        ``building_id``, ``x_rd``, ``y_rd`` [m, EPSG:28992], ``year``; variables ``lpr_mean``,
        ``lpr_p50``, ``lpr_p90`` and one ``lpr_pNN`` per further quantile [yr^-1]; with
        ``[run] keep_realisations`` also ``lpr_realisations`` [yr^-1] and ``realisation_weight``
        [-]; attribute ``provenance`` (JSON: version, SHA-256 of the config and of every model
        table, seed, realisations, times).

    Raises
    ------
    hra.outputs.OutputError
        An output exists and ``[output] overwrite`` is false, or its folder is missing or not
        writable (checked before the computation starts).

    Examples
    --------
    >>> import hra
    >>> cfg = hra.demo_config(n_buildings=2_000, realisations=100, years=(2025,))
    >>> ds = hra.run(cfg, write=False)  # doctest: +SKIP
    >>> above = int((ds["lpr_mean"] > 1e-5).sum())  # doctest: +SKIP
    >>> ds["lpr_p90"].attrs["units"]  # doctest: +SKIP
    'yr-1'
    """
    from hra import outputs
    from hra.integration.engine import compute

    out_path = cfg.resolve(cfg.output.path)
    csv_path = cfg.resolve(cfg.output.csv)
    gpkg_path = cfg.resolve(cfg.output.gpkg)
    targets = [Path(p) for p in (out_path, csv_path, gpkg_path) if p is not None] if write else []
    if targets:
        from hra.core.fileio import recover

        for folder in {t.parent for t in targets}:
            recover(folder)  # finish the commit of a killed run first (it may create a target)
    if write:
        for p in (out_path, csv_path, gpkg_path):
            if p is not None:
                outputs.check_output(Path(p), cfg.output.overwrite)
        outputs.check_not_input([out_path, csv_path, gpkg_path], _input_files(cfg))
        if out_path is not None and csv_path is not None and Path(out_path).resolve() == Path(csv_path).resolve():
            raise outputs.OutputError(f"[output] path and csv are the same file ({out_path}); give two paths")
    checkpoint = None
    if targets:
        from hra.integration.checkpoint import checkpoint_folder

        checkpoint = checkpoint_folder(targets[0])
    start = _dt.datetime.now(_dt.timezone.utc)
    res = compute(cfg, progress=progress, checkpoint=checkpoint if cfg.compute.resume else None)
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
            "config_resolved": cfg.resolved_record(),
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
    if targets:  # the chunk checkpoints go with the commit (or its roll-forward)
        write_outputs(ds, out_path, csv_path, gpkg_path, cfg.output.overwrite, obsolete=[checkpoint])
    return ds


def write_outputs(ds: xr.Dataset, path: Path | None, csv: Path | None, gpkg: Path | None, overwrite: bool,
                  obsolete=()) -> None:
    """Write the risk Dataset (zarr/netCDF), the CSV summary and the GeoPackage as one set.

    All of them are written to temporaries beside their targets and committed together
    (:class:`hra.core.fileio.OutputSet`): a run killed at any moment leaves the complete earlier
    set or, once its commit journal is rolled forward by the next run or reader, the complete new one.
    ``obsolete``: paths removed with the commit (the run's chunk checkpoints).
    """
    from hra import outputs
    from hra.core.fileio import OutputSet, kill_point

    targets = [Path(p) for p in (path, csv, gpkg) if p is not None]
    with OutputSet(targets, overwrite, error=outputs.OutputError,
                   overwrite_hint="set [output] overwrite = true (--overwrite)",
                   obsolete=[p for p in obsolete if p is not None]) as outs:
        if path is not None:
            outputs.write_dataset_plain(ds, outs.path(path))
            kill_point("outputs-written-0")
        if csv is not None:
            outputs.write_csv_plain(ds, outs.path(csv))
        if gpkg is not None:
            from hra.review.export import write_gpkg

            write_gpkg(ds, outs.path(gpkg), overwrite=True)
        outs.commit()
    for p in targets:
        log.info("wrote %s", p)


def _input_files(cfg: Config) -> list[Path | None]:
    """The files a run reads (config, rates or forecast, exposure, fragility curves, zones)."""
    files: list[Path | None] = [Path(cfg.source_file) if cfg.source_file else None]
    for section, key in (("source", "rates"), ("source", "forecast"), ("exposure", "buildings"),
                         ("fragility", "curves"), ("ground_motion", "zones")):
        value = getattr(getattr(cfg, section, None), key, None)
        files.append(cfg.resolve(value) if value is not None else None)
    return files


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
        # the source branch index runs over the source nodes (one for a rate grid; the forecast's
        # branch_rate, branch_mm, branch_mmax)
        src_sizes = [n.size for n in nodes[:len(nodes) - len(prep.model_tree.nodes)]]
        src = np.stack(np.unravel_index(sel.combo_s, src_sizes), axis=1)
        idx = np.concatenate([src, model], axis=1)
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

    Parameters
    ----------
    n_buildings
        Number of synthetic buildings. [-]
    seed
        Seed of the synthetic exposure and of every random stream of the run. [-]
    directory
        Folder for the inputs and ``run.toml`` (created; default a new temporary folder).
        [folder path]
    realisations
        Monte-Carlo realisations of the logic tree, or ``"all"`` to enumerate it. [-]
    years
        Years to compute (default 2025-2031). [yr]
    workers
        ``[compute] workers`` (default: the config's default). [-]
    output
        ``[output] path`` of the risk Dataset (``.zarr`` or ``.nc``; overwritten); default none.
        [file path]
    model
        ``"demo"`` (illustrative models), ``"groningen-v7"`` or ``"groningen-v6"`` (public models).
    model_dir
        Folder of the public model tables for the Groningen models (default ``$HRA_MODEL_DIR``).
        [folder path]

    Returns
    -------
    Config
        The validated configuration, as :func:`hra.load_config` reads it from ``directory``.

    Raises
    ------
    hra.inputs.modeldata.ModelDataError
        A Groningen ``model`` without model tables (neither ``model_dir`` nor ``$HRA_MODEL_DIR``).

    Examples
    --------
    >>> import hra, tempfile
    >>> cfg = hra.demo_config(n_buildings=500, seed=1, realisations=50, years=(2025, 2026),
    ...                       directory=tempfile.mkdtemp())
    >>> cfg.run.years, cfg.run.realisations, cfg.source.cell_size_m
    ([2025, 2026], 50, 1000.0)
    >>> v7 = hra.demo_config(n_buildings=500, model="groningen-v7")  # doctest: +SKIP
    >>> v7.ground_motion.model, v7.fragility.model  # doctest: +SKIP
    ('groningen-v7', 'fcm-v7')
    """
    import tomli_w

    from hra.demo.exposure import synthetic_exposure, write_exposure
    from hra.demo.source import YEARS, write_demo_rates

    if model not in DEMO_MODELS:
        raise ValueError(f"model {model!r} is not a demo model; use one of {', '.join(DEMO_MODELS)}")
    groningen = model != "demo"
    path = demo_model_dir(model, model_dir) if groningen else None
    if directory is None:  # a temporary folder, removed when the interpreter exits
        directory = Path(tempfile.mkdtemp(prefix="hra-demo-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    directory = Path(directory)
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


def building_lpr(cfg: Config, x_rd: float, y_rd: float, fragility, zone: int | None = None,
                 wierde: bool = False) -> dict[str, np.ndarray]:
    """LPR distribution (mean and quantiles per year) of one building with its own fragility.

    The building's curves replace the typology curves of ``cfg`` (one fragility branch, the
    consequence branches of ``[fragility] consequence``, ``presence_inside`` as the config's
    fragility source has it: 0.99 with a Groningen FCM or the ``model`` preset, 1 with curves),
    while the source, ground-motion model, logic tree, seed and realisations stay those of
    ``cfg``. The one-building case is built in memory: no file is written, and configs with the
    ``model = "groningen-v7"`` / ``"groningen-v6"`` presets work. Used by npr9998 to link a
    building's capacity to the norm (:func:`npr9998.assess.risk_verdict`).

    Parameters
    ----------
    cfg
        Run configuration (``hra.load_config``); its ``[exposure]`` and ``[output]`` are not used.
    x_rd, y_rd
        Location of the building. [m, EPSG:28992]
    fragility
        Object with ``median_g`` [g], ``beta`` [-], ``p_death_inside`` [-], ``p_death_outside`` [-]
        (3 values each, CS1..CS3) and ``imt`` (that of the config's ground-motion model), e.g.
        :class:`npr9998.BuildingFragility`.
    zone
        Site-response zone; default: from the config's zone polygons or, with GMM V7/V6, the V6
        zonation. [-]
    wierde
        The building stands on a wierde (dwelling mound; GMM V7/V6 only). [-]

    Returns
    -------
    dict of numpy.ndarray
        ``year`` [yr], ``lpr_mean`` and one ``lpr_pNN`` per quantile of ``cfg`` [yr^-1], each of
        shape (n_years,).

    Raises
    ------
    ValueError
        ``fragility.imt`` is not the intensity measure of the config's ground-motion model.

    Examples
    --------
    >>> import hra
    >>> from types import SimpleNamespace
    >>> cfg = hra.demo_config(n_buildings=10, realisations=100, years=(2025,))
    >>> frag = SimpleNamespace(median_g=[0.6, 0.9, 1.2], beta=[0.5, 0.5, 0.5], imt="AvgSa",
    ...                        p_death_inside=[0.05, 0.2, 0.5], p_death_outside=[0.0, 0.0, 0.0])
    >>> lpr = hra.building_lpr(cfg, 240_000.0, 590_000.0, frag, zone=3)  # doctest: +SKIP
    >>> bool(lpr["lpr_p90"][0] > 1e-5)  # doctest: +SKIP
    False
    """
    import pandas as pd

    from fragility.lognormal import fragility_from_curves
    from hra.chain import buildings_from_frame, make_gmm, prepare, presence_inside
    from hra.integration.engine import compute
    from hra.outputs import quantile_name

    imt = make_gmm(cfg).imts[0]
    if getattr(fragility, "imt", imt) != imt:
        raise ValueError(
            f"the building fragility is defined on {fragility.imt!r} but the ground-motion model of this config "
            f"gives {imt!r}; derive the fragility on {imt!r}"
        )
    one = lambda name: np.asarray(getattr(fragility, name), dtype=float).reshape(1, 3)  # noqa: E731
    frag = fragility_from_curves(
        ("building",), imt, one("median_g")[:, None, :], one("beta")[:, None, :], one("p_death_inside"),
        one("p_death_outside"), presence_inside=presence_inside(cfg),
        consequence=[(c.factor, c.weight) for c in cfg.fragility.consequence], name="building",
    )
    row = dict(id="building", x=float(x_rd), y=float(y_rd), typology="building", wierde=bool(wierde))
    if zone is not None:
        row["zone"] = int(zone)
    buildings = buildings_from_frame(pd.DataFrame([row]), frag.typologies, source="hra.building_lpr")
    one_cfg = cfg.with_updates(compute={"executor": "synchronous", "scheduler": None, "progress": False})
    res = compute(one_cfg, progress=False, prep=prepare(one_cfg, fragility=frag, buildings=buildings))
    out = {"year": np.asarray(res.prep.years), "lpr_mean": res.mean[0]}
    for i, q in enumerate(cfg.run.quantiles):
        out[quantile_name(q)] = res.quantiles[0, :, i]
    return out
