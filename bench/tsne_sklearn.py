#!/usr/bin/env python3
"""Side-by-side reference for bench/tsne.cpp: scikit-learn's Barnes-Hut t-SNE
on the identical data, printing the same `name: value unit` lines.

    bench_tsne --dump /tmp/dml_tsne          # writes tsne_<n>.f32 / .labels / .dml.f32
    OMP_NUM_THREADS=2 OMP_PROC_BIND=true python3 bench/tsne_sklearn.py /tmp/dml_tsne

Settings match dml's defaults: perplexity 30, early exaggeration 12 for 250
iterations, 1000 iterations, PCA start, angle (theta) 0.5, learning rate
'auto' (= max(N / 48, 50) with sklearn's 4x gradient, i.e. max(N / 12, 200)
in dml's convention). The embedding is saved as tsne_<n>.sklearn.f32;
`bench_tsne --score DIR sklearn` then measures it exactly as dml's own map
(exact KL, 2-D kNN accuracy). The KL printed here is scikit-learn's own
estimate (its P, its Barnes-Hut normaliser), reported for reference only.
"""
import argparse
import time

import numpy as np
import sklearn
from sklearn.manifold import TSNE

DIM = 512


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
        tsne = TSNE(n_components=2, perplexity=30.0, early_exaggeration=12.0, learning_rate="auto",
                    n_iter=1000, init="pca", method="barnes_hut", angle=0.5, random_state=0,
                    n_jobs=args.threads)
        t0 = time.perf_counter()
        y = tsne.fit_transform(x)
        seconds = time.perf_counter() - t0
        np.asarray(y, dtype=np.float32).tofile(base + ".sklearn.f32")
        name = f"tsne_{n}"
        print(f"{name}_seconds: {seconds:.3f} s")
        print(f"{name}_reported_kl: {tsne.kl_divergence_:.4f} nats", flush=True)


if __name__ == "__main__":
    main()
