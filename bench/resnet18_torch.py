#!/usr/bin/env python3
"""PyTorch side of bench/resnet18.cpp: the same ResNet18 (1x28x28 input, 10 classes), the same
steps, the same `name: value unit` lines, so the two can run alternately in one sitting.

    OMP_PROC_BIND=true OMP_NUM_THREADS=2 /usr/bin/python3 bench/resnet18_torch.py

Needs Debian's python3-torch and python3-torchvision. A training step is forward,
cross-entropy, backward and p -= lr * g under no_grad; FLOPs use the same dense convention
(0.197 GFLOP per image per training step, a third of that per forward).
"""
import os
import time

import torch
import torch.nn as nn
import torchvision

TRAIN_GFLOP = 0.197
FORWARD_GFLOP = TRAIN_GFLOP / 3


def model():
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return m


def median_time(f, reps):
    f()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}")
    g = torch.Generator().manual_seed(0)
    net = model().eval()
    with torch.no_grad():
        for n in (32, 128, 256):
            x = torch.randn(n, 1, 28, 28, generator=g)
            t = median_time(lambda: net(x), 7 if n >= 128 else 15)
            print(f"torch_resnet18_forward_b{n}_images_per_s: {n / t:.4g} images/s")
            print(f"torch_resnet18_forward_b{n}_gflops: {n * FORWARD_GFLOP / t:.4g} GFLOP/s")
    for n in (32, 128):
        net = model().train()
        x = torch.randn(n, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)

        def step():
            net.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(net(x), y)
            loss.backward()
            with torch.no_grad():
                for p in net.parameters():
                    p -= 0.01 * p.grad

        t = median_time(step, 7 if n >= 128 else 15)
        print(f"torch_resnet18_train_b{n}_images_per_s: {n / t:.4g} images/s")
        print(f"torch_resnet18_train_b{n}_gflops: {n * TRAIN_GFLOP / t:.4g} GFLOP/s")


if __name__ == "__main__":
    main()
