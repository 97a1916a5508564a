#!/usr/bin/python3
"""PyTorch twin of bench/bench_unet.c: the U-Net score model (the score-SDE
tutorial's ScoreNet, tools/load_model.py's unet_class) on the same workloads,
timed the same way (warm-up, then the median of repeats).

  torch_unet.py --only NAME [--threads K] [--objective ncsn] [--batch N]
                [--repeats R] [--seconds S] [--warmup SEC] [--clock wall|cpu]
  torch_unet.py --check DIR   # DIR from `bench_unet --dump DIR`: recompute
                              # every workload from scorekit's operands

Workloads: train-b64, train-b128 (a training step: the ncsn loss
1/B sum_b 1/2 |sigma_b s(x_b + sigma_b z_b, sigma_b) + z_b|^2, backward,
torch.optim.Adam), sample-b1000 (s(x, sigma) under torch.no_grad(), what a
predictor-corrector sampler evaluates), lik-b1000 (s(x, sigma) and one
vector-Jacobian product v^T ds/dx, what a likelihood computation evaluates).
Prints RESULT NAME SECONDS-A-STEP and MAXRSS NAME KiB (this process's peak
resident set; run one workload a process).

--check compares in float64, from scorekit's float32 parameters and inputs:
the loss and every parameter gradient (train), the score (all) and the
vector-Jacobian product (lik); each tensor's largest difference relative to
the largest magnitude of that tensor, or of all gradients for a tensor whose
exact gradient is zero (dense7: 32 groups of one channel cancel its shift).
"""
import argparse
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from load_model import unet_class  # noqa: E402

WORKLOADS = {"train-b64": ("train", 64), "train-b128": ("train", 128),
             "sample-b1000": ("sample", 1000), "lik-b1000": ("lik", 1000)}
# The noise ladder of bench_unet.c: 10 levels geometric from 2 to 0.5.
N_LEVELS, SIGMA_FIRST, SIGMA_LAST = 10, 2.0, 0.5
TOL = 1e-4


def loss_of(obj, net, x, z, sigma):
    if obj != "ncsn":
        raise SystemExit(f"torch_unet.py: objective {obj} has no twin here (ncsn only)")
    s = net(x + sigma * z, sigma)
    return (0.5 * ((sigma * s + z) ** 2).sum(1)).mean(), s


def check_dir(d):
    """Recomputes one dumped workload in float64; returns (ok, lines)."""
    def load(name):
        return torch.from_numpy(np.load(os.path.join(d, name + ".npy")).astype(np.float64))
    net = unet_class()().double()
    state = {k: load(k) for k in net.state_dict()}
    net.load_state_dict(state)
    x, sigma = load("in_x"), load("in_sigma")
    obj = open(os.path.join(d, "objective.txt")).read().strip()
    name = os.path.basename(d.rstrip("/"))
    lines, worst = [], 0.0

    def rel(a, b, scale=None):
        scale = scale if scale is not None else float(b.abs().max())
        return float((a - b).abs().max()) / max(scale, 1e-30)

    if os.path.exists(os.path.join(d, "in_z.npy")):
        z = load("in_z")
        loss, s = loss_of(obj, net, x, z, sigma)
        params = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, [p for _, p in params])
        sk_loss = float(load("out_loss")[0])
        r = abs(sk_loss - float(loss)) / abs(float(loss))
        worst = max(worst, r)
        gmax = max(float(g.abs().max()) for g in grads)
        gw, gname = 0.0, ""
        for (k, _), g in zip(params, grads):
            scale = float(g.abs().max())
            e = rel(load("grad_" + k), g, scale if scale > 1e-6 * gmax else gmax)
            if e > gw:
                gw, gname = e, k
        worst = max(worst, gw)
        lines.append(f"{name}: {obj} loss torch {float(loss):.6g} scorekit {sk_loss:.6g} "
                     f"(rel {r:.1e}), {len(params)} gradients max rel {gw:.1e} ({gname})")
    else:
        xr = x.clone().requires_grad_(True)
        s = net(xr, sigma)
        e = rel(load("out_score"), s.detach())
        worst = max(worst, e)
        msg = f"{name}: score max rel {e:.1e}"
        if os.path.exists(os.path.join(d, "in_v.npy")):
            vjp = torch.autograd.grad(s, xr, load("in_v"))[0]
            e2 = rel(load("out_vjp"), vjp)
            worst = max(worst, e2)
            msg += f", vjp max rel {e2:.1e}"
        lines.append(msg)
    ok = worst <= TOL
    lines[-1] += " ok" if ok else f" FAIL (tolerance {TOL:g})"
    return ok, lines


def make_inputs(batch):
    g = torch.Generator().manual_seed(1234)
    x = torch.rand(batch, 784, generator=g)
    z = torch.randn(batch, 784, generator=g)
    v = torch.randn(batch, 784, generator=g)
    lv = torch.randint(0, N_LEVELS, (batch, 1), generator=g).float() / (N_LEVELS - 1)
    sigma = SIGMA_FIRST * (SIGMA_LAST / SIGMA_FIRST) ** lv
    return x, z, v, sigma


def make_step(kind, obj, batch):
    torch.manual_seed(42)
    net = unet_class()()
    x, z, v, sigma = make_inputs(batch)
    if kind == "train":
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            loss, _ = loss_of(obj, net, x, z, sigma)
            loss.backward()
            opt.step()
    elif kind == "sample":
        def step():
            with torch.no_grad():
                net(x, sigma)
    else:
        def step():
            xr = x.detach().requires_grad_(True)
            s = net(xr, sigma)
            torch.autograd.grad(s, xr, v)
    return step


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=sorted(WORKLOADS))
    ap.add_argument("--objective", default="ncsn")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--check")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.check:
        torch.set_num_threads(max(a.threads, 1))
        ok = True
        for name in sorted(os.listdir(a.check)):
            if os.path.isdir(os.path.join(a.check, name)):
                good, lines = check_dir(os.path.join(a.check, name))
                ok &= good
                for line in lines:
                    print("CHECK " + line)
        return 0 if ok else 1
    if not a.only:
        ap.error("--only NAME or --check DIR")
    kind, batch = WORKLOADS[a.only]
    step = make_step(kind, a.objective, a.batch or batch)
    # --clock cpu: the process's CPU time over the threads (bench_unet.c's).
    now = time.perf_counter if a.clock == "wall" else lambda: time.process_time() / a.threads
    t0, n = now(), 0
    while now() - t0 < a.warmup or n < 2:
        step()
        n += 1
    s = now()
    step()
    iters = max(1, int(a.seconds / (now() - s)))
    runs = []
    for _ in range(a.repeats):
        s = now()
        for _ in range(iters):
            step()
        runs.append((now() - s) / iters)
    runs.sort()
    sec = runs[len(runs) // 2]
    print(f"RESULT {a.only} {sec:.6f} s/step ({1 / sec:.3f} steps/s, median of {a.repeats} x {iters})")
    print(f"MAXRSS {a.only} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
