#!/usr/bin/env python3
"""NumPy reference for bench/knn.cpp: exact 1-NN (L2) of 10k x 10k x 512-d.

argmin_j of |q|^2 + |r_j|^2 - 2 q.r_j through one BLAS GEMM per query block
(the whole 10k x 10k float32 matrix is only 400 MB, so one block).
Prints the BLAS that NumPy runs (via threadpoolctl, when installed) and
`knn_10k_numpy_seconds: <best of N> s`. Debian's numpy needs OpenBLAS
(`apt-get install libopenblas0-pthread`); with the reference libblas3 this
takes about a minute. OPENBLAS_CORETYPE=Haswell (set on this machine for old
OpenBLAS builds) hides the AVX-512 kernels, so unset it for this command only:

    OMP_PROC_BIND=true OMP_NUM_THREADS=2 \
      env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/knn_numpy.py
"""
import sys
import time

import numpy as np


def knn1(q, r):
    qn = np.einsum("ij,ij->i", q, q)
    rn = np.einsum("ij,ij->i", r, r)
    d2 = qn[:, None] + rn[None, :] - 2.0 * (q @ r.T)
    idx = np.argmin(d2, axis=1)
    return idx, np.sqrt(np.maximum(d2[np.arange(len(q)), idx], 0.0))


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    rng = np.random.default_rng(42)
    q = rng.uniform(-1, 1, size=(10000, 512)).astype(np.float32)
    r = rng.uniform(-1, 1, size=(10000, 512)).astype(np.float32)
    try:
        import threadpoolctl

        for info in threadpoolctl.threadpool_info():
            if info.get("user_api") == "blas":
                print(f"numpy_blas: {info.get('internal_api')} {info.get('version')} "
                      f"{info.get('architecture')} threads={info.get('num_threads')}")
    except ImportError:
        pass
    knn1(q, r)  # warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        knn1(q, r)
        best = min(best, time.perf_counter() - t0)
    print(f"knn_10k_numpy_seconds: {best:.3f} s")


if __name__ == "__main__":
    main()
