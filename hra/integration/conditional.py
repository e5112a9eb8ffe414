"""Component API for validation: any link of the chain for one event (SodM's check).

:func:`conditional_risk` evaluates, for one earthquake (magnitude, rupture distance) at a site
(zone, wierde) and one typology, the logic-tree mean of P(CS >= 1), P(CS >= 3), the probability
of death inside and outside (structural collapse, plus the chimney term outside for the Groningen
FCM) and the event LPR = presence_inside P_in + (1 - presence_inside) P_out. The ground motion is
integrated with the same Gaussian-mixture quadrature the engine uses, with a point source so that
the given distance is the rupture distance; the median-branch weights are w(M) where the model
defines them (GMM V7 eq. 9.8).
"""

from __future__ import annotations

import numpy as np

from hra.integration.engine import death_tables

PAIRED_FCM = {"groningen-v7": "fcm-v7", "groningen-v6": "fcm-v6"}


def _model_and_fragility(model: str, fcm: str | None, model_dir):
    if model == "demo":
        import tempfile
        from pathlib import Path

        from fragility.demo import CONSEQUENCE, PRESENCE_INSIDE, demo_fragility_table
        from fragility.lognormal import read_fragility_csv
        from hra.gmm.demo import DemoGMM

        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "fragility.csv"
            demo_fragility_table().to_csv(p, index=False)
            fr = read_fragility_csv(p, "AvgSa", PRESENCE_INSIDE, CONSEQUENCE)
        return DemoGMM(), fr
    from fragility.groningen import load_fcm
    from hra.gmm.registry import load_gmm

    gmm = load_gmm(model, model_dir, rupture="point")
    fr = load_fcm(fcm or PAIRED_FCM.get(model, "fcm-v7"), model_dir).to_fragility_model(0.99)
    return gmm, fr


def conditional_risk(model: str, magnitude: float, rrup_km: float, zone: int, typology: str, wierde: bool = False,
                     model_dir=None, fcm: str | None = None) -> dict[str, float]:
    """Logic-tree mean conditional risk of one event: collapse and death probabilities given (M, R_rup).

    The building's collapse-state probabilities and death probabilities given one event of
    magnitude ``magnitude`` at rupture distance ``rrup_km``, integrated over the ground-motion
    variability at the site (quadrature) and averaged over all branches of the GMM and the FCM
    with their weights (for GMM V7/V6 the median weights w(M) at this magnitude). This is the
    per-event term of the LPR sum (docs/lpr.md §1) that ``hra inspect conditional`` prints.

    Parameters
    ----------
    model
        Ground-motion model: ``"groningen-v7"``, ``"groningen-v6"`` or ``"demo"``.
    magnitude
        Event magnitude. [ML]
    rrup_km
        Rupture distance (>= 3 for the Groningen models: hypocentres at 3 km depth). [km]
    zone
        Site-response zone (``ID_V6`` for the Groningen models; 1..8 for the demo). [-]
    typology
        Structural system (e.g. ``"URM3M_U"``; demo: ``"URM_terraced_pre1920"``).
    wierde
        Building on a dwelling mound (Groningen models only).
    model_dir
        Folder of the public model tables (default ``$HRA_MODEL_DIR``). [folder path]
    fcm
        Fragility/consequence model (default: the one paired with ``model``, ``"fcm-v7"`` or
        ``"fcm-v6"``; ``"fcm-tno2020"`` on request).

    Returns
    -------
    dict
        ``p_cs1`` and ``p_cs3``: P(CS >= CS1) and P(CS >= CS3) [-]; ``p_death_inside`` and
        ``p_death_outside``: probability of death of a person inside and outside (the latter
        with the chimney term) [-]; ``lpr_event``: the presence-weighted probability of death,
        the LPR per event [-]; all given the event. ``n_branches``: number of GMM x FCM
        branches averaged.

    Examples
    --------
    >>> import hra
    >>> r = hra.conditional_risk("demo", magnitude=5.0, rrup_km=5.0, zone=1, typology="URM_terraced_pre1920")
    >>> r["n_branches"], f"{r['p_cs1']:.3f}", f"{r['lpr_event']:.2e}"
    (108, '0.107', '5.31e-03')
    >>> v7 = hra.conditional_risk("groningen-v7", 4.5, 5.0, zone=308, typology="URM3M_U")  # doctest: +SKIP
    >>> v7["n_branches"]  # doctest: +SKIP
    648
    """
    gmm, fr = _model_and_fragility(model, fcm, model_dir)
    t = fr.typology_index(typology)
    tree = gmm.tree.enumerate()
    names = [n.name for n in gmm.tree.nodes]
    w = tree.weight.copy()
    if hasattr(gmm, "median_weights") and "gmm_median" in names:
        j = names.index("gmm_median")
        nominal = gmm.tree.node("gmm_median").weight_array
        w_m = gmm.median_weights(np.array([magnitude]))[0]
        w = w / nominal[tree.index[:, j]] * w_m[tree.index[:, j]]
    kw = {"wierde": wierde} if getattr(gmm, "uses_wierde", False) else {}
    K = fr.median_g.shape[2]
    wf, wc = fr.fragility_node.weight_array, fr.consequence_node.weight_array
    out = dict(p_cs1=0.0, p_cs3=0.0, p_death_inside=0.0, p_death_outside=0.0)
    m, r = np.array([float(magnitude)]), np.array([float(rrup_km)])
    for g in range(tree.n):
        branch = {nm: int(tree.index[g, j]) for j, nm in enumerate(names)}
        mix = gmm.ln_im_mixture(fr.imt, m, r, zone, branch, **kw)
        mix2 = gmm.ln_im_mixture(fr.direct_imt, m, r, zone, branch, **kw) if fr.direct_imt is not None else None
        # presence 1: the inside death probability alone; presence 0: outside incl. the chimney term
        d_in, pexc = death_tables(fr, t, mix, None, presence_inside=1.0)
        d_out, _ = death_tables(fr, t, mix, mix2, presence_inside=0.0)
        out["p_cs1"] += w[g] * float(pexc[0, :, 0, 0, 0] @ wf)
        out["p_cs3"] += w[g] * float(pexc[0, :, K - 1, 0, 0] @ wf)
        out["p_death_inside"] += w[g] * float(np.einsum("fc,f,c->", d_in[0, :, :, 0, 0], wf, wc))
        out["p_death_outside"] += w[g] * float(np.einsum("fc,f,c->", d_out[0, :, :, 0, 0], wf, wc))
    pin = fr.presence_inside
    out["lpr_event"] = pin * out["p_death_inside"] + (1 - pin) * out["p_death_outside"]
    out["n_branches"] = int(tree.n * wf.size * wc.size)
    return out
