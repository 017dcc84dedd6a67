"""Peer baseline for bench_reduction: the same reduction written the way a
numpy user would (closed-form Gramians, Cholesky factors, one full SVD,
projection, eig, conversion to LRU parameters). Run with /usr/bin/python3
(Debian's numpy on OpenBLAS); prints one JSON line like bench_reduction.

    python3 numpy_reduction.py [--blocks 6] [--state 384] [--hidden 512] [--rank 93] [--repeats 3]
"""
import argparse
import json
import time

import numpy as np


def random_system(rng, n, h, r_min=0.9, r_max=0.999):
    """Same distribution as tests/support/random_systems.h (not the same stream)."""
    radius = np.sqrt(rng.uniform(r_min**2, r_max**2, n))
    lam = radius * np.exp(1j * rng.uniform(0, 2 * np.pi, n))
    gamma = np.sqrt(1 - np.abs(lam) ** 2)
    b = gamma[:, None] * (rng.standard_normal((n, h)) + 1j * rng.standard_normal((n, h))) / np.sqrt(2 * h)
    c = (rng.standard_normal((h, n)) + 1j * rng.standard_normal((h, n))) / np.sqrt(n)
    return lam, b, c


def reduce_block(lam, b, c, rank):
    p = (b @ b.conj().T) / (1 - np.outer(lam, lam.conj()))
    q = (c.conj().T @ c) / (1 - np.outer(lam.conj(), lam))
    lc = np.linalg.cholesky(p)
    lo = np.linalg.cholesky(q)
    u, s, vh = np.linalg.svd(lo.conj().T @ lc)
    scale = 1 / np.sqrt(s[:rank])
    t = lc @ vh[:rank].conj().T * scale
    w = lo @ u[:, :rank] * scale
    a_r = w.conj().T @ (lam[:, None] * t)
    b_r = w.conj().T @ b
    c_r = c @ t
    mu, v = np.linalg.eig(a_r)
    b_d = np.linalg.solve(v, b_r)
    c_d = c_r @ v
    nu_log = np.log(-np.log(np.abs(mu)))
    theta_log = np.log(np.mod(np.angle(mu), 2 * np.pi))
    gamma = np.sqrt(1 - np.abs(mu) ** 2)
    b_lru = b_d / gamma[:, None]
    return s, (nu_log, theta_log, np.log(gamma), b_lru.real, b_lru.imag, c_d.real, c_d.imag)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--state", type=int, default=384)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--rank", type=int, default=93)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    systems = [random_system(rng, args.state, args.hidden) for _ in range(args.blocks)]
    for s in systems:  # warm-up
        reduce_block(*s, args.rank)
    walls = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for s in systems:
            reduce_block(*s, args.rank)
        walls.append(1e3 * (time.perf_counter() - start))
    walls.sort()
    print(json.dumps({"bench": "reduction-numpy", "blocks": args.blocks, "state_dim": args.state,
                      "hidden_dim": args.hidden, "rank": args.rank,
                      "wall_ms_median": walls[len(walls) // 2], "wall_ms_all": walls}))


if __name__ == "__main__":
    main()
