"""Groningen fragility and consequence models FCM-V7, FCM-V6 and FCM-TNO2020.

References
----------
Crowley, H. & Pinho, R. (2020). *Report on the v7 Fragility and Consequence Models for the
Groningen Field.* NAM report, January 2020 (FCM-V7; tables dated 2020-01-27).
Crowley, H., Pinho, R., van Elk, J. & Uilenreef, J. (2019). *Probabilistic damage assessment of
buildings due to induced seismicity.* Bull. Earthquake Eng. 17, 4495-4516,
doi:10.1007/s10518-018-0462-1; and the v6 FCM report (2019) (FCM-V6; tables 2019-02-15).
FCM-TNO2020: TNO's conversion of V6/V7 (``TNO2020/conversie_v3.yaml``, TNO 2021).
Tables: TNO SHRA-Groningen-hazard-risk-models (EUPL-1.2), read at run time (:mod:`hra.inputs.modeldata`).
Equations restated in docs/model-chain.md §4.

Fragility (per structural system t, fragility branch f, limit state s)
----------------------------------------------------------------------
The displacement demand is ``ln SD = b0 + b1 ln AvgSa`` (SD in m, AvgSa in g: geometric mean of
the surface Sa at 0.01-1 s, arbitrary component) with log-sd ``sigma``, and a limit state is
reached when SD exceeds its displacement limit DL_s. Hence a lognormal fragility in AvgSa::

    P(LS >= s | AvgSa) = Phi((ln AvgSa - ln A50_s) / beta),   A50_s = exp((ln DL_s - b0)/b1),  beta = sigma/b1

States: collapse CS1 (partial) .. CS3 (full), damage DS2..DS4. Chimney/gable failure:
``Phi((ln PGA - ln Median_PGA_chf)/beta_chf)`` on surface PGA [g] (0 = not applicable).

Consequence (per t, consequence branch c)
-----------------------------------------
``Pd_L|CSk`` is the probability of death of a person at location L (inside, outside) given
collapse state CSk. With nested states (P(>=CS1) >= P(>=CS2) >= P(>=CS3)) the probability of
death is (docs/model-chain.md §4.2)::

    P_die,L = sum_k P(>=CS_k) (Pd_L|CS_k - Pd_L|CS_(k-1)),   Pd|CS_0 = 0

(= sum_k [P(>=CS_k) - P(>=CS_(k+1))] Pd_L|CS_k). A falling chimney kills a person outside
with ``Phi((ln PGA - ln Median_PGA_chd)/beta_chd)`` directly (not conditional on chimney failure;
the medians are extrapolated far above physical PGA; 0 = none).

Branches: fragility Lower/Middle/Upper 0.17/0.66/0.17; consequence Lower/Middle/Upper
0.25/0.50/0.25; independent of each other and of the GMM branches.

FCM-TNO2020 conversion (per class, from ``conversie_v3.yaml``; see :func:`convert_tno2020`)
--------------------------------------------------------------------------------------------
* ``base``: take the class's V6 or V7 tables (all columns, all branches);
* ``frag_up2mid = yes``: the central b0 is the Upper branch's b0, else the Middle branch's;
* ``frag_med_shift = yes``: ``b0 -> b0 - b1 ln 0.85``, i.e. the median AvgSa capacity A50 is
  multiplied by 0.85 (the demand at a given AvgSa rises by the factor 0.85^-b1);
* the fragility branches are rebuilt as ``b0_mid + (-1.73, 0, +1.73) modelonzekerheid``
  (sigma of the epistemic capacity: 0.47 RC/S/W/PC, 0.35 URM); only b0 changes, the other
  columns keep the base branch values (as TNO's converter does);
* ``conseq_up2mid = yes``: the consequence branches move up one: new Lower = old Middle, new
  Middle = old Upper, new Upper = old Upper x (old Upper / old Middle) (ratio 1 where old Middle
  is 0; capped at 1). The chimney-death parameters are not shifted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

from fragility.lognormal import p_death_nested  # noqa: F401  (the one nesting convention)
from hra.inputs import modeldata as md

FRAGILITY_BRANCHES = ("Lower", "Middle", "Upper")
FRAGILITY_WEIGHTS = (0.17, 0.66, 0.17)
CONSEQUENCE_BRANCHES = ("Lower", "Middle", "Upper")
CONSEQUENCE_WEIGHTS = (0.25, 0.50, 0.25)
COLLAPSE_STATES = ("CS1", "CS2", "CS3")
DAMAGE_STATES = ("DS2", "DS3", "DS4")
#: TNO2020: multiple of 'modelonzekerheid' between the central and the outer fragility branches.
TNO2020_BRANCH_MULTIPLIER = 1.73
#: TNO2020: factor on the median AvgSa capacity where frag_med_shift = yes.
TNO2020_CAPACITY_FACTOR = 0.85

REFERENCES = {
    "fcm-v7": "Crowley & Pinho (2020), Report on the v7 Fragility and Consequence Models for the Groningen Field, NAM",
    "fcm-v6": "Crowley et al. (2019), v6 Fragility and Consequence Models for the Groningen Field, NAM",
    "fcm-tno2020": "TNO (2021) conversion conversie_v3.yaml of FCM-V6/V7 (Crowley & Pinho 2019, 2020)",
}


# ---------------------------------------------------------------------------------------------
# Equations (pure)
# ---------------------------------------------------------------------------------------------


def lognormal_from_demand(b0, b1, sigma, displacement_limit_m):
    """Median AvgSa [g] and log-sd of the fragility from the demand model (docs/model-chain.md §4.1).

    ``A50 = exp((ln DL - b0)/b1)``, ``beta = sigma/b1``, for ``ln SD[m] = b0 + b1 ln AvgSa[g]``
    with log-sd ``sigma`` and displacement limit ``DL`` [m]. Arrays broadcast.
    """
    b1 = np.asarray(b1, float)
    median = np.exp((np.log(np.asarray(displacement_limit_m, float)) - b0) / b1)
    beta = np.asarray(sigma, float) / b1
    return median, np.broadcast_to(beta, np.broadcast_shapes(beta.shape, median.shape)).copy()


def lognormal_poe(im_g, median_g, beta):
    """``Phi((ln IM - ln median)/beta)``; 0 where the median is 0 (not applicable). IM, median [g]."""
    im = np.asarray(im_g, float)
    med = np.asarray(median_g, float)
    b = np.asarray(beta, float)
    ok = (med > 0) & (b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.log(np.where(im > 0, im, np.nan)) - np.log(np.where(ok, med, 1.0))) / np.where(ok, b, 1.0)
    p = np.where(im > 0, ndtr(z), 0.0)
    return np.where(ok, p, 0.0)


# ---------------------------------------------------------------------------------------------
# The model object
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroningenFCM:
    """A Groningen FCM as arrays (t = typology, f = fragility branch, c = consequence branch,
    s = state).

    Attributes
    ----------
    name, reference
        Registry name (``fcm-v7``, ``fcm-v6``, ``fcm-tno2020``) and publication.
    typologies
        Structural-system codes (e.g. ``URM3M_U``), in table order.
    states
        ``("CS1", "CS2", "CS3")``: collapse states (nested).
    b0, b1, sigma
        Demand model per (t, f): ``ln SD = b0 + b1 ln AvgSa``. [m, g]
    displacement_limit_m
        DL per (t, f, s). [m]
    median_g, beta
        Lognormal fragility on AvgSa per (t, f, s). [g], [ln units]
    ds_median_g, ds_beta
        Same for damage states DS2..DS4, (t, f, 3).
    p_death_inside, p_death_outside
        Pd given the collapse state per (t, c, s).
    chimney_failure_median_g, chimney_failure_beta
        Chimney/gable failure on surface PGA per (t, f) (median 0 = not applicable). [g]
    chimney_death_median_g, chimney_death_beta
        Death outside by a falling chimney on surface PGA per (t, c) (0 = none). [g]
    fragility_weights, consequence_weights
        Branch weights (0.17/0.66/0.17, 0.25/0.5/0.25).
    sha256
        Files read -> SHA-256.
    """

    name: str
    reference: str
    typologies: tuple[str, ...]
    b0: np.ndarray
    b1: np.ndarray
    sigma: np.ndarray
    displacement_limit_m: np.ndarray
    median_g: np.ndarray
    beta: np.ndarray
    ds_median_g: np.ndarray
    ds_beta: np.ndarray
    p_death_inside: np.ndarray
    p_death_outside: np.ndarray
    chimney_failure_median_g: np.ndarray
    chimney_failure_beta: np.ndarray
    chimney_death_median_g: np.ndarray
    chimney_death_beta: np.ndarray
    states: tuple[str, ...] = COLLAPSE_STATES
    damage_states: tuple[str, ...] = DAMAGE_STATES
    fragility_branches: tuple[str, ...] = FRAGILITY_BRANCHES
    consequence_branches: tuple[str, ...] = CONSEQUENCE_BRANCHES
    fragility_weights: np.ndarray = field(default_factory=lambda: np.asarray(FRAGILITY_WEIGHTS))
    consequence_weights: np.ndarray = field(default_factory=lambda: np.asarray(CONSEQUENCE_WEIGHTS))
    sha256: dict = field(default_factory=dict)

    @property
    def imts(self) -> tuple[str, str]:
        """IMs the model uses: AvgSa (fragility) and PGA (chimneys)."""
        return ("AvgSa", "PGA")

    def to_fragility_model(self, presence_inside: float = 0.99):
        """The engine's :class:`fragility.lognormal.FragilityModel` of this FCM.

        Structural fragility on AvgSa (lognormal per typology, branch and collapse state), death
        probabilities inside/outside per consequence branch, and the chimney fatality on PGA as
        the direct outside-death term; LPR = presence_inside P_in + (1 - presence_inside)
        (P_out + P_chimney) as the chain assembles it (docs/model-chain.md §4.4).
        """
        from fragility.lognormal import FragilityModel
        from hra.core.logictree import Node

        fnode = Node("fragility", tuple(self.fragility_branches), tuple(float(w) for w in self.fragility_weights))
        cnode = Node("consequence", tuple(self.consequence_branches), tuple(float(w) for w in self.consequence_weights))
        return FragilityModel(
            typologies=tuple(self.typologies), imt="AvgSa", median_g=np.asarray(self.median_g, float),
            beta=np.asarray(self.beta, float), p_death_inside=np.asarray(self.p_death_inside, float),
            p_death_outside=np.asarray(self.p_death_outside, float), fragility_node=fnode, consequence_node=cnode,
            presence_inside=float(presence_inside), states=tuple(self.states), direct_imt="PGA",
            direct_median_g=np.asarray(self.chimney_death_median_g, float),
            direct_beta=np.asarray(self.chimney_death_beta, float), name=self.name,
            source_files=tuple(sorted(self.sha256)),
        )

    def typology_index(self, typology: str | int) -> int:
        if isinstance(typology, (int, np.integer)):
            if not 0 <= int(typology) < len(self.typologies):
                raise KeyError(f"typology index {typology} out of range 0..{len(self.typologies) - 1}")
            return int(typology)
        try:
            return self.typologies.index(str(typology))
        except ValueError:
            raise KeyError(f"typology {typology!r} not in {self.name}; known: {list(self.typologies)}") from None

    def _branch(self, branch, labels: tuple[str, ...], what: str) -> int:
        if isinstance(branch, str):
            if branch not in labels:
                raise KeyError(f"unknown {what} branch {branch!r}; labels {labels}")
            return labels.index(branch)
        i = int(branch)
        if not 0 <= i < len(labels):
            raise KeyError(f"{what} branch index {i} out of range 0..{len(labels) - 1}")
        return i

    def _state(self, state: str) -> tuple[np.ndarray, np.ndarray, int]:
        if state in self.states:
            return self.median_g, self.beta, self.states.index(state)
        if state in self.damage_states:
            return self.ds_median_g, self.ds_beta, self.damage_states.index(state)
        raise KeyError(f"unknown limit state {state!r}; known {self.states + self.damage_states}")

    def p_exceed(self, typology: str | int, state: str, avgsa_g, branch: int | str = "Middle") -> np.ndarray:
        """P(limit state >= ``state`` | AvgSa) for one typology and fragility branch.

        Parameters
        ----------
        typology
            Structural-system code or index.
        state
            ``CS1``..``CS3`` or ``DS2``..``DS4``.
        avgsa_g
            Surface AvgSa (geometric mean of Sa(0.01..1 s), arbitrary component). [g]
        branch
            Fragility branch: index 0..2 or ``Lower``/``Middle``/``Upper``.
        """
        t = self.typology_index(typology)
        f = self._branch(branch, self.fragility_branches, "fragility")
        med, beta, s = self._state(state)
        return lognormal_poe(avgsa_g, med[t, f, s], beta[t, f, s])

    def p_death(self, typology: str | int, avgsa_g, frag_branch: int | str = "Middle",
                cons_branch: int | str = "Middle", location: str = "inside") -> np.ndarray:
        """P(death | AvgSa) of a person inside or outside (debris zone) the building, nested states."""
        t = self.typology_index(typology)
        f = self._branch(frag_branch, self.fragility_branches, "fragility")
        c = self._branch(cons_branch, self.consequence_branches, "consequence")
        if location not in ("inside", "outside"):
            raise KeyError("location must be 'inside' or 'outside'")
        pd = (self.p_death_inside if location == "inside" else self.p_death_outside)[t, c]
        a = np.asarray(avgsa_g, float)[..., None]
        p_ge = lognormal_poe(a, self.median_g[t, f], self.beta[t, f])
        return p_death_nested(p_ge, pd)

    def p_chimney_death(self, typology: str | int, pga_g, cons_branch: int | str = "Middle") -> np.ndarray:
        """P(death outside by a falling chimney/gable | surface PGA [g]) (0 for classes without)."""
        t = self.typology_index(typology)
        c = self._branch(cons_branch, self.consequence_branches, "consequence")
        return lognormal_poe(pga_g, self.chimney_death_median_g[t, c], self.chimney_death_beta[t, c])

    def p_chimney_failure(self, typology: str | int, pga_g, frag_branch: int | str = "Middle") -> np.ndarray:
        """P(chimney/gable failure | surface PGA [g]) (output only; 0 for classes without)."""
        t = self.typology_index(typology)
        f = self._branch(frag_branch, self.fragility_branches, "fragility")
        return lognormal_poe(pga_g, self.chimney_failure_median_g[t, f], self.chimney_failure_beta[t, f])


def _stack(tables: dict[str, dict[str, np.ndarray]], col: str, branches=FRAGILITY_BRANCHES) -> np.ndarray:
    """(t, branch) array of one column."""
    return np.stack([tables[b][col] for b in branches], axis=1)


def assemble_fcm(name: str, reference: str, typologies, frag: dict[str, dict[str, np.ndarray]],
                 fat: dict[str, dict[str, np.ndarray]], sha256: dict | None = None) -> GroningenFCM:
    """Build a :class:`GroningenFCM` from per-branch column arrays (pure; no I/O)."""
    b0 = _stack(frag, "b0")
    b1 = _stack(frag, "b1")
    sigma = _stack(frag, "sigma")
    for c in ("b2", "b3"):
        if c in frag["Middle"] and any(np.any(frag[b][c] != 0) for b in FRAGILITY_BRANCHES):
            raise ValueError(f"{name}: non-zero {c}: the V6/V7 demand model ln SD = b0 + b1 ln AvgSa has no {c} term")
    dl = np.stack([_stack(frag, f"DL_{s}") for s in COLLAPSE_STATES], axis=-1)
    dl_ds = np.stack([_stack(frag, f"DL_{s}") for s in DAMAGE_STATES], axis=-1)
    med, beta = lognormal_from_demand(b0[..., None], b1[..., None], sigma[..., None], dl)
    dmed, dbeta = lognormal_from_demand(b0[..., None], b1[..., None], sigma[..., None], dl_ds)
    pin = np.stack([_stack(fat, f"Pd_inside|{s}", CONSEQUENCE_BRANCHES) for s in COLLAPSE_STATES], axis=-1)
    pout = np.stack([_stack(fat, f"Pd_outside|{s}", CONSEQUENCE_BRANCHES) for s in COLLAPSE_STATES], axis=-1)
    return GroningenFCM(
        name=name,
        reference=reference,
        typologies=tuple(typologies),
        b0=b0,
        b1=b1,
        sigma=sigma,
        displacement_limit_m=dl,
        median_g=med,
        beta=beta,
        ds_median_g=dmed,
        ds_beta=dbeta,
        p_death_inside=pin,
        p_death_outside=pout,
        chimney_failure_median_g=_stack(frag, "Median_PGA_chf"),
        chimney_failure_beta=_stack(frag, "beta_chf"),
        chimney_death_median_g=_stack(fat, "Median_PGA_chd", CONSEQUENCE_BRANCHES),
        chimney_death_beta=_stack(fat, "beta_chd", CONSEQUENCE_BRANCHES),
        sha256=dict(sha256 or {}),
    )


def convert_tno2020(v6: md.FCMTables, v7: md.FCMTables, rules: dict[str, dict]) -> tuple[list[str], dict, dict]:
    """FCM-TNO2020 per-branch tables from V6/V7 and the conversion rules (module docstring).

    Returns ``(typologies, fragility, fatality)`` in the layout of :class:`hra.inputs.modeldata.FCMTables`
    (branch -> column -> array over typologies). Classes follow the V7 table order.
    """
    order = [t for t in v7.classes if t in rules] + sorted(t for t in rules if t not in v7.classes)
    frag = {b: {} for b in FRAGILITY_BRANCHES}
    fat = {b: {} for b in CONSEQUENCE_BRANCHES}
    rows_f = {b: {c: [] for c in md.FRAGILITY_COLUMNS[1:]} for b in FRAGILITY_BRANCHES}
    rows_c = {b: {c: [] for c in md.FATALITY_COLUMNS[1:]} for b in CONSEQUENCE_BRANCHES}
    for t in order:
        r = rules[t]
        base = v6 if r["base"] == "v6" else v7
        if t not in base.classes:
            raise KeyError(f"TNO2020 class {t!r} has base {r['base']} but is not in the FCM-{r['base'].upper()} tables")
        i = base.classes.index(t)
        mid = "Upper" if r["frag_up2mid"] == "yes" else "Middle"
        b0_mid = base.fragility[mid]["b0"][i]
        b1_mid = base.fragility[mid]["b1"][i]
        if r["frag_med_shift"] == "yes":
            b0_mid = b0_mid - b1_mid * np.log(TNO2020_CAPACITY_FACTOR)
        for j, b in enumerate(FRAGILITY_BRANCHES):
            for c in md.FRAGILITY_COLUMNS[1:]:
                rows_f[b][c].append(base.fragility[b][c][i])
            rows_f[b]["b0"][-1] = b0_mid + (j - 1) * TNO2020_BRANCH_MULTIPLIER * r["modelonzekerheid"]
        for c in md.FATALITY_COLUMNS[1:]:
            lo, mi, up = (base.fatality[b][c][i] for b in CONSEQUENCE_BRANCHES)
            if r["conseq_up2mid"] == "yes" and c.startswith("Pd_"):
                ratio = up / mi if mi > 0 else 1.0
                lo, mi, up = mi, up, min(1.0, up * ratio)
            for b, v in zip(CONSEQUENCE_BRANCHES, (lo, mi, up)):
                rows_c[b][c].append(v)
    for b in FRAGILITY_BRANCHES:
        frag[b] = {c: np.asarray(v, float) for c, v in rows_f[b].items()}
    for b in CONSEQUENCE_BRANCHES:
        fat[b] = {c: np.asarray(v, float) for c, v in rows_c[b].items()}
    return order, frag, fat


def load_fcm(name: str, model_dir: str | os.PathLike | None = None, verify: bool = True) -> GroningenFCM:
    """Load a Groningen fragility and consequence model (FCM) by name.

    Reads the public FCM tables, checks them, and returns lognormal collapse fragilities on
    AvgSa [g] per typology, fragility branch and collapse state, with the death probabilities per
    consequence branch and the chimney terms on PGA [g] (docs/model-chain.md §4).

    Parameters
    ----------
    name
        ``"fcm-v7"`` (Crowley & Pinho 2020), ``"fcm-v6"`` or ``"fcm-tno2020"`` (TNO's conversion
        of V6/V7); case-insensitive.
    model_dir
        Folder of the public model tables (the upstream ``convert/res`` layout; default
        ``$HRA_MODEL_DIR``). [folder path]
    verify
        Check every table against the SHA-256 registry (:data:`hra.inputs.modeldata.MODEL_FILES`);
        ``False`` for deliberately edited tables.

    Returns
    -------
    GroningenFCM
        Arrays ``median_g`` [g] and ``beta`` [ln units] of shape (typology, fragility branch, CS1..CS3),
        ``p_death_inside`` and ``p_death_outside`` [-] of shape (typology, consequence branch,
        CS1..CS3), the branch names and weights, and ``sha256`` of the tables read.

    Raises
    ------
    KeyError
        Unknown ``name``.
    hra.inputs.modeldata.ModelDataError
        A table is missing, fails its SHA-256 check or has bad columns; the message names the file.

    Examples
    --------
    >>> import fragility
    >>> fcm = fragility.load_fcm("fcm-v7")  # doctest: +SKIP
    >>> len(fcm.typologies), fcm.fragility_branches  # doctest: +SKIP
    (35, ('Lower', 'Middle', 'Upper'))
    >>> round(float(fcm.p_exceed("URM3M_U", "CS1", 0.3, "Middle")), 4)  # P(CS >= CS1 | AvgSa = 0.3 g)  # doctest: +SKIP
    0.0806
    """
    key = name.lower()
    if key in ("fcm-v7", "fcm-v6"):
        t = md.load_fcm_tables("V7" if key == "fcm-v7" else "V6", model_dir, verify)
        return assemble_fcm(key, REFERENCES[key], t.classes, t.fragility, t.fatality, t.sha256)
    if key == "fcm-tno2020":
        v6 = md.load_fcm_tables("V6", model_dir, verify)
        v7 = md.load_fcm_tables("V7", model_dir, verify)
        rules, sha = md.load_tno2020_conversion(model_dir, verify)
        order, frag, fat = convert_tno2020(v6, v7, rules)
        return assemble_fcm(key, REFERENCES[key], order, frag, fat, {**v6.sha256, **v7.sha256, **sha})
    raise KeyError(f"unknown FCM {name!r}; known: {sorted(REFERENCES)}")
