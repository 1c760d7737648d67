#!/usr/bin/env python3
"""Side-by-side reference for bench/tsne.cpp: scikit-learn's Barnes-Hut t-SNE
on the identical data, printing the same `name: value unit` lines.

    bench_tsne --dump /tmp/dml_tsne          # writes tsne_<n>.f32 / .labels / .dml.f32
    OMP_NUM_THREADS=2 OMP_PROC_BIND=true python3 bench/tsne_sklearn.py /tmp/dml_tsne

Settings match dml's defaults: perplexity 30, early exaggeration 12 for 250
iterations, 1000 iterations, PCA start, angle (theta) 0.5, learning rate
'auto' (= max(N / 48, 50) with sklearn's 4x gradient, i.e. max(N / 12, 200)
in dml's convention). The embedding is saved as tsne_<n>.sklearn.f32.
"""
import argparse
import time

import numpy as np
import sklearn
from sklearn.manifold import TSNE

DIM = 512
VOTE_K = 5


def knn_accuracy(y, labels, k=VOTE_K):
    """Leave-one-out majority vote of the k nearest neighbours (ties go to the
    label met first, i.e. nearest), exactly as bench/tsne.cpp."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    sq = (y * y).sum(1)
    correct = 0
    for s in range(0, n, 1024):
        e = min(n, s + 1024)
        d = sq[s:e, None] + sq[None, :] - 2.0 * (y[s:e] @ y.T)
        d[np.arange(e - s), np.arange(s, e)] = np.inf
        nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
        for r, row in enumerate(nearest):
            votes = labels[row]
            counts = np.bincount(votes)
            best = next(l for l in votes if counts[l] == counts.max())
            correct += best == labels[s + r]
    return correct / n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("--sizes", default="5000,10000")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"# scikit-learn {sklearn.__version__}, numpy {np.__version__}", flush=True)
    for n in (int(s) for s in args.sizes.split(",")):
        base = f"{args.data_dir}/tsne_{n}"
        x = np.fromfile(base + ".f32", dtype=np.float32).reshape(n, DIM)
        labels = np.fromfile(base + ".labels", dtype=np.int32)
        tsne = TSNE(n_components=2, perplexity=30.0, early_exaggeration=12.0, learning_rate="auto",
                    n_iter=1000, init="pca", method="barnes_hut", angle=0.5, random_state=0,
                    n_jobs=args.threads)
        t0 = time.perf_counter()
        y = tsne.fit_transform(x)
        seconds = time.perf_counter() - t0
        np.asarray(y, dtype=np.float32).tofile(base + ".sklearn.f32")
        name = f"tsne_{n}"
        print(f"{name}_seconds: {seconds:.3f} s")
        print(f"{name}_kl: {tsne.kl_divergence_:.4f} nats")
        print(f"{name}_knn_acc: {knn_accuracy(y, labels):.4f} fraction", flush=True)


if __name__ == "__main__":
    main()
