#!/usr/bin/python3
"""Exact Hankel singular values of the golden LRU systems (60-digit mpmath).

Why this oracle exists: the golden files (../shared/golden/*.json) carry the
official JAX code's HSVs, computed as sqrt(eig(P Q)) in double precision. That
route squares the condition number: the forward error of an eigenvalue of P Q is
about eps * ||P|| ||Q|| ~ eps * sigma_1^2, so a small HSV sigma_k gets a relative
error of about eps * (sigma_1 / sigma_k)^2. On the '_weak' cases (sigma_k ~ 1e-6,
sigma_1 ~ 5) that is up to ~1e-4 relative, so the golden HSVs cannot be used to
check our square-root method at a tight tolerance. This script computes them to
60 digits instead, from exactly the same double-precision inputs:

    P_ij = (B B^H)_ij / (1 - l_i conj(l_j))      Q_ij = (C^H C)_ij / (1 - conj(l_i) l_j)
    P = Lc Lc^H,  Q = Lo Lo^H  (Cholesky),        HSVs = svd(Lo^H Lc)

and writes tests/data/exact_hsv/<case>.json = {"case", "digits", "hsv_desc"}.

Usage: /usr/bin/python3 scripts/exact_hsv.py [--jobs 2] [case.json ...]
(default: every file in ../shared/golden). N = 64 takes minutes per case.
"""

import argparse
import glob
import json
import multiprocessing
import os
import sys
import time

import mpmath
from mpmath import mp

DIGITS = 60
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN_DIR = os.path.join(os.path.dirname(ROOT), "shared", "golden")
OUT_DIR = os.path.join(ROOT, "tests", "data", "exact_hsv")


def to_complex(pair):
    # mpf(float) is exact: the oracle sees precisely the doubles the C++ tests parse.
    return mp.mpc(mp.mpf(pair[0]), mp.mpf(pair[1]))


def psd_factor(m):
    """L with M = L L^H. Cholesky first; an (numerically) semidefinite M falls
    back to the Hermitian eigendecomposition, L = V diag(sqrt(max(w, 0)))."""
    try:
        return mp.cholesky(m)
    except (ValueError, ZeroDivisionError):
        w, v = mp.eighe(m)
        n = m.rows
        lfac = mp.matrix(n, n)
        for j in range(n):
            s = mp.sqrt(max(w[j], mp.mpf(0)))
            for i in range(n):
                lfac[i, j] = v[i, j] * s
        return lfac


def exact_hsv(case):
    lam = [to_complex(p) for p in case["lambda"]]
    b = [[to_complex(p) for p in row] for row in case["B"]]  # {N, H}
    c = [[to_complex(p) for p in row] for row in case["C"]]  # {H, N}
    n, h = len(lam), len(b[0])
    p = mp.matrix(n, n)
    q = mp.matrix(n, n)
    for i in range(n):
        for j in range(n):
            bbh = mp.fsum(b[i][k] * mp.conj(b[j][k]) for k in range(h))
            chc = mp.fsum(mp.conj(c[k][i]) * c[k][j] for k in range(len(c)))
            p[i, j] = bbh / (1 - lam[i] * mp.conj(lam[j]))
            q[i, j] = chc / (1 - mp.conj(lam[i]) * lam[j])
    lc = psd_factor(p)
    lo = psd_factor(q)
    m = lo.transpose_conj() * lc
    s = mp.svd_c(m, compute_uv=False)
    return sorted((s[i] for i in range(s.rows)), reverse=True)


def run_case(path):
    name = os.path.splitext(os.path.basename(path))[0]
    mp.dps = DIGITS
    start = time.time()
    with open(path) as f:
        case = json.load(f)
    hsv = exact_hsv(case)
    out = {"case": name, "digits": DIGITS, "hsv_desc": [float(s) for s in hsv]}
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, name + ".json"), "w") as f:
        json.dump(out, f, indent=1)  # json writes floats with repr: round-trip exact
        f.write("\n")
    golden = case["hsv_sorted_desc"]
    worst = max(abs(g - float(s)) / float(s) for g, s in zip(golden, hsv) if s > 0)
    return "%s: N=%d, %.0f s, max rel. diff golden vs exact %.3g" % (
        name, len(hsv), time.time() - start, worst)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="*", help="golden json files (default: all)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    paths = args.cases or sorted(glob.glob(os.path.join(GOLDEN_DIR, "*.json")))
    if not paths:
        sys.exit("no golden files found in " + GOLDEN_DIR)
    # Largest first so the slow N = 64 case does not start last.
    paths.sort(key=os.path.getsize, reverse=True)
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        for line in pool.imap_unordered(run_case, paths):
            print(line, flush=True)
    print("mpmath", mpmath.__version__, "backend", mpmath.libmp.BACKEND)


if __name__ == "__main__":
    main()
