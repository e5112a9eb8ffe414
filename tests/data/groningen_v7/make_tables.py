"""Independent re-computation of the GMM verification tables in this folder.

HOW THE NUMBERS WERE MADE
-------------------------
This script is a plain-Python re-implementation of the GMM-V7 (and V6) equations written
straight from docs/model-chain.md §3 (reference median §3.1, sigma and c2c §3.2, site
amplification and phi_S2S §3.3, V6 differences §3.7). It does **not** import ``hra`` (or numpy):
it reads the public TNO coefficient CSVs with the ``csv`` module and uses only ``math``. The
tests compare ``hra.gmm.groningen_v7`` / ``groningen_v6`` against the CSVs it writes, so the
two implementations check each other. The values are derived numbers for a handful of points,
not the published coefficient tables (which are EUPL-1.2 and stay outside the repository).

Tables (long format; inputs prefixed, OpenQuake style):

* ``GMMV7_MEDIAN.csv``: reference (NS_B) median Sa, geometric mean, in g (981 cm/s^2 per g);
  ``branch`` = median level (Lower, CentralLower, CentralUpper, Upper); ``dist_rrup`` in km.
* ``GMMV7_SIGMA.csv``: ``SIGMA_C2C`` (sqrt of the Stafford et al. 2019 c2c variance) and
  ``SIGMA_ARBITRARY`` = sqrt(tau^2 + phi_SS^2 + c2c) for ``branch`` = ``tau=<level>;phi_ss=<level>``.
* ``GMMV7_SITE.csv``: ``LN_AF`` (clipped, eq. 9.12-9.14) and ``PHI_S2S`` (eq. 9.15, reference Sa
  in **g**) for ``site_zone`` at reference Sa ``sa_ref_g`` [g].
* ``GMMV6_MEDIAN.csv``: GMM-V6 reference median Sa in g (eq. 5.1-5.3).

Run (from anywhere)::

    HRA_MODEL_DIR=/path/to/convert/res python tests/data/groningen_v7/make_tables.py

Regenerate only when the model interpretation deliberately changes, and say why in the commit.
"""

from __future__ import annotations

import csv
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
G = 981.0  # cm/s^2 per g, as the Groningen tables use
V7_LEVELS = ["Lower", "CentralLower", "CentralUpper", "Upper"]
TAU_LEVELS = ["Lower", "Central", "Upper"]
PHI_LEVELS = ["Lower", "Upper"]


def read_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def num(s):
    s = s.strip()
    return 0.0 if s in ("", "NA") else float(s)


def row_for_period(rows, key, T):
    for r in rows:
        if abs(float(r[key]) - T) < 1e-9:
            return r
    raise KeyError(T)


# ----------------------------------------------------------------------------- GMM-V7 (§3.1-3.3)


def v7_ln_median_cms2(coef, level, M, R, T):
    c = {k.rsplit("_level", 1)[0]: num(v) for k, v in coef.items() if k.endswith(f"_level{level}")}
    Mm = 4.75
    if M < Mm:
        fs = c["m0"] + c["m1"] * (M - Mm) + c["m2"] * (M - Mm) ** 2
    else:
        fs = c["m0"] + c["m3"] * (M - Mm) + c["m4"] * (M - Mm) ** 2
    g = [
        math.log(min(max(R / 3.0, 1.0), 7.0 / 3.0)),
        math.log(min(max(R / 7.0, 1.0), 12.0 / 7.0)),
        math.log(min(max(R / 12.0, 1.0), 25.0 / 12.0)),
        math.log(max(R / 25.0, 1.0)),
    ]
    Mr = 3.875
    tanh_ok = [True, T <= 0.2, T <= 0.5, True]
    fp = 0.0
    for k in range(4):
        if M > Mr and tanh_ok[k]:
            rk = c[f"r{k}a"] + c[f"r{k}c"] * math.tanh(c[f"r{k}d"] * (M - Mr))
        else:
            rk = c[f"r{k}a"] + c[f"r{k}b"] * (M - Mr)
        fp += rk * g[k]
    return fs + fp


def c2c_var(T, M, R):
    Ms = min(max(M, 3.6), 5.6)
    Ts = min(max(T, 0.1), 0.85)
    v1 = 0.026 + 1.03 * (5.6 - Ms) * R ** (-2.22)
    v2 = 0.045 + 5.315 * (5.6 - Ms) * R ** (-2.92)
    return v1 + (v2 - v1) * math.log(Ts / 0.1) / math.log(8.5)


def v7_site(af, M, R, sa_ref_g):
    a = {k: num(v) for k, v in af.items()}
    lnR = math.log(R)
    Ma, Mb = a["Ma"], a["Mb"]
    Mr1 = Ma + (Mb - Ma) * (lnR - math.log(3.0)) / math.log(60.0 / 3.0)
    Mr1 = min(max(Mr1, min(Ma, Mb)), max(Ma, Mb))
    f1 = (a["a0"] + a["a1"] * lnR + (a["b0"] + a["b1"] * lnR) * (min(M, Mr1) - Mr1)
          + a["a2"] * (lnR - math.log(a["Rref"])) ** 2 + a["b2"] * (min(M, Mr1) - a["Mref2"]) ** 2
          + a["a3"] * (max(M, Mr1) - Mr1))
    ln_af = f1 + a["f2"] * math.log((sa_ref_g + a["f3"]) / a["f3"])
    ln_af = min(max(ln_af, math.log(a["AFmin"])), math.log(a["AFmax"]))
    s1, s2, xl, xh = a["s1"], a["s2"], a["xl"], a["xh"]
    phi = s1 + (s2 - s1) * (math.log(sa_ref_g) - math.log(xl)) / math.log(xh / xl)
    phi = min(max(phi, min(s1, s2)), max(s1, s2))
    return ln_af, phi


# ----------------------------------------------------------------------------- GMM-V6 (§3.7)


def v6_ln_median_cms2(coef, level, M, R):
    c = {k.rsplit("_level", 1)[0]: num(v) for k, v in coef.items() if k.endswith(f"_level{level}")}
    if M <= 4.7:
        fs = c["m0"] + c["m1"] * (M - 4.7) + c["m2"] * (M - 4.7) ** 2
    elif M <= 5.45:
        fs = c["m0"] + c["m3"] * (M - 4.7)
    else:
        fs = c["m0"] + c["m3"] * 0.75 + c["m4"] * (M - 5.45) + c["m5"] * (M - 5.45) ** 2
    g0 = math.log(min(max(R / 3.0, 1.0), 7.0 / 3.0))
    g1 = math.log(min(max(R / 7.0, 1.0), 12.0 / 7.0))
    g2 = math.log(max(R / 12.0, 1.0))
    return fs + (c["r0"] + c["r1"] * M) * g0 + (c["r2"] + c["r3"] * M) * g1 + (c["r4"] + c["r5"] * M) * g2


# ----------------------------------------------------------------------------- writing

HEADER = ["rup_mag", "dist_rrup", "period", "branch", "site_zone", "sa_ref_g", "result_type", "value"]


def write(name, rows):
    with open(os.path.join(HERE, name), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for r in rows:
            w.writerow([f"{r[0]:g}", f"{r[1]:g}", f"{r[2]:g}", r[3], r[4], r[5], r[6], f"{r[7]:.12g}"])


def main(model_dir):
    v7 = os.path.join(model_dir, "V7")
    med = read_rows(os.path.join(v7, "gmpe_medians_NS_B_20211010_v7.csv"))
    sig = read_rows(os.path.join(v7, "gmpe_sigmas_NS_B_20211010_v7.csv"))
    afr = read_rows(os.path.join(v7, "gmpeSurfaceAmplificationModel_20211010_v7.csv"))

    rows = []
    for M in (3.5, 4.5, 5.0, 6.0):
        for R in (4.243, 9.0, 30.0):
            for T in (0.01, 0.3, 1.0):
                coef = row_for_period(med, "periods", T)
                for k, lab in enumerate(V7_LEVELS, start=1):
                    y = math.exp(v7_ln_median_cms2(coef, k, M, R, T)) / G
                    rows.append((M, R, T, lab, "", "", "MEDIAN_SA_G", y))
    write("GMMV7_MEDIAN.csv", rows)

    rows = []
    for M in (3.5, 5.0):
        for R in (4.0, 20.0):
            for T in (0.01, 0.4, 1.0):
                s = row_for_period(sig, "periods", T)
                c2c = c2c_var(T, M, R)
                rows.append((M, R, T, "", "", "", "SIGMA_C2C", math.sqrt(c2c)))
                for it, ip in ((1, 0), (0, 1), (2, 1)):
                    tau = num(s[f"tau_level{it + 1}"])
                    phi = num(s[f"phi_ss_level{ip + 1}"])
                    rows.append((M, R, T, f"tau={TAU_LEVELS[it]};phi_ss={PHI_LEVELS[ip]}", "", "", "SIGMA_ARBITRARY",
                                 math.sqrt(tau * tau + phi * phi + c2c)))
    write("GMMV7_SIGMA.csv", rows)

    rows = []
    for zone in ("308", "3111"):
        for T in (0.01, 0.5):
            af = next(r for r in afr if r["Zone"] == zone and abs(float(r["T"]) - T) < 1e-9)
            for M in (4.0, 6.0):
                for R in (5.0, 20.0):
                    for sa in (0.001, 0.03, 0.3, 1.5):
                        ln_af, phi = v7_site(af, M, R, sa)
                        rows.append((M, R, T, "", zone, f"{sa:g}", "LN_AF", ln_af))
                        rows.append((M, R, T, "", zone, f"{sa:g}", "PHI_S2S", phi))
    write("GMMV7_SITE.csv", rows)

    med6 = read_rows(os.path.join(model_dir, "V6", "gmpe_medians_NS_B_20190314_v6.csv"))
    rows = []
    for M in (3.5, 5.0, 6.0):
        for R in (4.243, 20.0):
            for T in (0.01, 0.5):
                coef = row_for_period(med6, "periods", T)
                for k, lab in enumerate(V7_LEVELS, start=1):
                    rows.append((M, R, T, lab, "", "", "MEDIAN_SA_G", math.exp(v6_ln_median_cms2(coef, k, M, R)) / G))
    write("GMMV6_MEDIAN.csv", rows)


if __name__ == "__main__":
    d = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HRA_MODEL_DIR")
    if not d:
        sys.exit("usage: make_tables.py MODEL_DIR  (or set HRA_MODEL_DIR to the convert/res folder)")
    main(d)
