#!/usr/bin/python3
"""PyTorch twin of bench/bench_conv.c: the U-Net's convolution layers at the
same shapes, each pass as the op autograd runs for it, timed the same way
(warm-up, then the median of repeats).

  torch_conv.py [--threads K] [--only LAYER] [--pass PASS] [--batch N]
                [--repeats R] [--seconds S] [--warmup SEC]
  torch_conv.py --check DIR   # DIR from `bench_conv --dump DIR`: recompute
                              # every case from scorekit's inputs

A layer's passes: fwd (conv2d or conv_transpose2d), bwd-data and bwd-weight
(aten::convolution_backward with the input or the weight gradient alone, as
loss.backward() calls it). Prints per case RESULT LAYER PASS GFLOP/s MS MFLOP
CPU-GFLOP/s (by the wall clock, and by the process's CPU time).
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# name: (transposed, cin, cout, h, oh, stride, output padding), as
# bench_conv.c's layers[]: input (batch, cin, h, h), output (batch, cout, oh,
# oh); 3 × 3 kernels, no padding, no bias.
LAYERS = {
    "conv1": (False, 1, 32, 28, 26, 1, 0),
    "conv2": (False, 32, 64, 26, 12, 2, 0),
    "conv3": (False, 64, 128, 12, 5, 2, 0),
    "conv4": (False, 128, 256, 5, 2, 2, 0),
    "tconv4": (True, 256, 128, 2, 5, 2, 0),
    "tconv3": (True, 256, 64, 5, 12, 2, 1),
    "tconv2": (True, 128, 32, 12, 26, 2, 1),
    "tconv1": (True, 64, 1, 26, 28, 1, 0),
}
PASSES = ("fwd", "bwd-data", "bwd-weight")


def make_case(name, pss, a, b):
    """The computation of one pass on operands a and b as bench_conv.c
    gives them (fwd: x, w; bwd-data: dy, w; bwd-weight: x, dy for a conv,
    dy, x for a tconv), and its multiply-adds."""
    tr, cin, cout, h, oh, s, op = LAYERS[name]
    n = a.shape[0]
    wshape = (cin, cout, 3, 3) if tr else (cout, cin, 3, 3)
    # The convolution underneath (tconv: the one it transposes): its input
    # is the larger plane.
    big, small = (oh, h) if tr else (h, oh)
    macs = n * (cout if not tr else cin) * (cin if not tr else cout) * 9 * small * small
    if pss == "fwd":
        if tr:
            return (lambda: F.conv_transpose2d(a, b, stride=s, output_padding=op)), macs
        return (lambda: F.conv2d(a, b, stride=s)), macs
    # convolution_backward(grad_output, input, weight, bias_sizes, stride,
    # padding, dilation, transposed, output_padding, groups, output_mask)
    if pss == "bwd-data":
        dy, w = a, b
        x = torch.zeros((n, cin, h, h))
        mask = (True, False, False)
    else:
        x, dy = (b, a) if tr else (a, b)
        w = torch.zeros(wshape)
        mask = (False, True, False)
    k = 0 if pss == "bwd-data" else 1
    outpad = [op, op] if tr else [0, 0]
    return (lambda: torch.ops.aten.convolution_backward(
        dy, x, w, None, [s, s], [0, 0], [1, 1], tr, outpad, 1, mask)[k]), macs


def operands(name, pss, n, gen):
    tr, cin, cout, h, oh, s, op = LAYERS[name]
    x = torch.randn((n, cin, h, h), generator=gen)
    dy = torch.randn((n, cout, oh, oh), generator=gen)
    w = torch.randn((cin, cout, 3, 3) if tr else (cout, cin, 3, 3), generator=gen)
    if pss == "fwd":
        return x, w
    if pss == "bwd-data":
        return dy, w
    return (dy, x) if tr else (x, dy)


def bench_time(fn, warmup, seconds, repeats):
    t0, n_warm = time.perf_counter(), 0
    while time.perf_counter() - t0 < warmup or n_warm < 2:
        fn()
        n_warm += 1
    iters = int(seconds / ((time.perf_counter() - t0) / n_warm)) + 1
    runs, cpus = [], []
    for _ in range(repeats):
        s, sc = time.perf_counter(), time.process_time()
        for _ in range(iters):
            fn()
        runs.append((time.perf_counter() - s) / iters)
        cpus.append((time.process_time() - sc) / iters)
    return sorted(runs)[repeats // 2], sorted(cpus)[repeats // 2]


def check(root, names, passes):
    """Recomputes every dumped case from scorekit's operands; returns the
    number of mismatches."""
    failures = 0
    for name in names:
        for pss in passes:
            path = lambda w: os.path.join(root, f"{name}-{pss}-{w}.npy")
            if not os.path.exists(path("out")):
                continue
            a, b = (torch.from_numpy(np.load(path(w))) for w in ("a", "b"))
            fn, _ = make_case(name, pss, a, b)
            want = fn().numpy()
            got = np.load(path("out"))
            if got.shape != want.shape:
                print(f"CHECK {name} {pss}: shape {got.shape} vs torch {want.shape} MISMATCH")
                failures += 1
                continue
            err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)
            ok = err < 1e-5
            print(f"CHECK {name} {pss}: max |scorekit - torch| / max |torch| {err:.1e}"
                  + (" ok" if ok else " MISMATCH"))
            failures += not ok
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only")
    ap.add_argument("--pass", dest="pss")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.1)
    ap.add_argument("--warmup", type=float, default=0.2)
    ap.add_argument("--check", metavar="DIR")
    a = ap.parse_args()
    names = [a.only] if a.only else list(LAYERS)
    passes = [a.pss] if a.pss else list(PASSES)
    if any(n not in LAYERS for n in names) or any(p not in PASSES for p in passes):
        ap.error(f"layers: {' '.join(LAYERS)}; passes: {' '.join(PASSES)}")
    torch.set_num_threads(a.threads)
    if a.check:
        sys.exit(1 if check(a.check, names, passes) else 0)
    print(f"# torch {torch.__version__} threads {torch.get_num_threads()} batch {a.batch}"
          f" mkldnn {torch.backends.mkldnn.is_available()}")
    gen = torch.Generator().manual_seed(4321)
    with torch.no_grad():
        for name in names:
            for pss in passes:
                fn, macs = make_case(name, pss, *operands(name, pss, a.batch, gen))
                sec, cpu = bench_time(fn, a.warmup, a.seconds, a.repeats)
                print(f"RESULT {name} {pss} {2 * macs / sec * 1e-9:.2f} {sec * 1e3:.4f} "
                      f"{2 * macs * 1e-6:.2f} {2 * macs / cpu * 1e-9:.2f}", flush=True)


if __name__ == "__main__":
    main()
