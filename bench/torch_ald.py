#!/usr/bin/python3
"""PyTorch twin of `scorekit sample`: annealed Langevin dynamics with the same
trained model (loaded from model.safetensors), particles, ladder and steps.

  torch_ald.py MODEL --n N --steps-per-level T --threads K --out X.npy
Prints the seconds the sampling loop took.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from load_model import load, torch_module  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--steps-per-level", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, layers = load(a.model, ema=True)
    net = torch_module(cfg, layers)
    sigmas = cfg["sigmas"]
    eps = 0.2 * sigmas[-1] ** 2  # scorekit sample's default
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.n, cfg["dim"], generator=g) * sigmas[0]
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in sigmas:
            alpha = eps * s * s / sigmas[-1] ** 2
            sig = torch.tensor(s)
            for _ in range(a.steps_per_level):
                x += 0.5 * alpha * net(x, sig) + alpha ** 0.5 * torch.randn(x.shape, generator=g)
    dt = time.perf_counter() - t0
    if a.out:
        np.save(a.out, x.numpy().astype(np.float32))
    print(f"{dt:.3f}")


if __name__ == "__main__":
    main()
