#!/usr/bin/env python3
"""scikit-learn's Barnes-Hut repulsion against the exact one, on a saved map:
the counterpart of `bench_tsne --bh-error DIR NAME` (same measures, same names).

    python3 bench/tsne_bh_error.py DIR NAME [--sizes 5000] [--angle 0.5]

reads DIR/tsne_<n>.NAME.f32 (n x 2 float32, e.g. from bench_tsne --dump and
bench/tsne_sklearn.py) and prints, for the repulsive gradient -rep_i / Z:
relative error (norm over all points), median per-point relative error, and
the scale (projection of the estimate on the exact gradient; below 1 =
repulsion biased low). It calls scikit-learn's private
sklearn.manifold._barnes_hut_tsne.gradient with an all-zero P, so that only
the repulsive part remains; tested with scikit-learn 1.2.
"""
import argparse

import numpy as np
import scipy.sparse as sp
from sklearn.manifold import _barnes_hut_tsne


def exact_repulsion(y):
    """-rep_i / Z with rep_i = sum_j w_ij^2 (y_i - y_j), w_ij = 1 / (1 + |y_i - y_j|^2)."""
    n = len(y)
    rep = np.zeros((n, 2))
    z = 0.0
    for s in range(0, n, 500):
        d = y[s:s + 500, None, :] - y[None, :, :]
        w = 1.0 / (1.0 + (d ** 2).sum(-1))
        w[np.arange(len(w)), np.arange(s, s + len(w))] = 0.0
        z += w.sum()
        rep[s:s + 500] = ((w ** 2)[..., None] * d).sum(1)
    return -rep / z


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("name")
    parser.add_argument("--sizes", default="5000")
    parser.add_argument("--angle", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        y = np.fromfile(f"{args.data_dir}/tsne_{n}.{args.name}.f32", dtype=np.float32).reshape(n, 2)
        exact = exact_repulsion(y.astype(np.float64))
        # A P with n zero entries (one per row): the attractive part vanishes.
        p = sp.csr_matrix((np.zeros(n, dtype=np.float32), (np.arange(n), (np.arange(n) + 1) % n)), shape=(n, n))
        grad = np.zeros((n, 2), dtype=np.float32)
        _barnes_hut_tsne.gradient(p.data, y, p.indices.astype(np.int64), p.indptr.astype(np.int64), grad,
                                  args.angle, 2, 0, dof=1, compute_error=False, num_threads=args.threads)
        g = grad.astype(np.float64)
        err = np.linalg.norm(g - exact) / np.linalg.norm(exact)
        per_point = np.median(np.linalg.norm(g - exact, axis=1) / np.linalg.norm(exact, axis=1))
        scale = (g * exact).sum() / (exact ** 2).sum()
        name = f"tsne_{n}_bh"
        print(f"{name}_angle: {args.angle:.2f}")
        print(f"{name}_rel_error: {err:.5f} fraction")
        print(f"{name}_median_point_error: {per_point:.5f} fraction")
        print(f"{name}_scale: {scale:.5f} fraction", flush=True)


if __name__ == "__main__":
    main()
