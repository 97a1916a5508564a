#!/usr/bin/python3
"""PyTorch twin of bench/bench_mlp.c: the same models, losses and Adam step,
timed the same way (warm-up, then the median of repeats of N steps).

  torch_mlp.py [--threads K] [--only NAME] [--iters N] [--repeats R] [--warmup SEC]
  torch_mlp.py --check DIR   # DIR from `bench_mlp --dump DIR`: recompute
                             # scorekit's loss, gradients and Adam step
Prints, per workload, RESULT NAME STEPS/s ... and MAXRSS NAME KiB (the
process's peak resident set, as bench_mlp does).
"""
import argparse
import os
import resource
import sys
import time

import numpy as np
import torch

DIM = 2
N_LEVELS, SIGMA_FIRST, SIGMA_LAST, DSM_SIGMA = 10, 1.0, 0.01, 0.1

# name: (noise-conditional, hidden layers, width, batch, objective or None for
# fwd+bwd), as bench_mlp.c's workloads[]
WORKLOADS = {
    "mlp-fwd-bwd": (False, 3, 128, 512, None),
    "dsm": (False, 2, 128, 512, "dsm"),
    "ssm": (False, 2, 128, 512, "ssm"),
    "ssm-vr": (False, 2, 128, 512, "ssm-vr"),
    "esm": (False, 2, 128, 512, "esm"),
    "ncsn": (True, 3, 128, 512, "ncsn"),
    "ncsn-b128": (True, 3, 128, 128, "ncsn"),
    "big-ncsn": (True, 4, 512, 4096, "ncsn"),
    "big-ssm-vr": (False, 4, 512, 4096, "ssm-vr"),
}


class Score(torch.nn.Module):
    """s(x) = f(x), or s(x, σ) = f([x, log σ]) / σ as scorekit's SK_MODEL_NCMLP."""

    def __init__(self, conditional, depth, hidden):
        super().__init__()
        self.conditional = conditional
        layers, width = [], DIM + (1 if conditional else 0)
        for _ in range(depth):
            layers += [torch.nn.Linear(width, hidden), torch.nn.Softplus()]
            width = hidden
        layers.append(torch.nn.Linear(width, DIM))
        self.mlp = torch.nn.Sequential(*layers)

    def forward(self, x, sigma=None):
        if not self.conditional:
            return self.mlp(x)
        return self.mlp(torch.cat([x, sigma.log()], dim=1)) / sigma

    def linears(self):
        return [m for m in self.mlp if isinstance(m, torch.nn.Linear)]

    def load_flat(self, flat):
        """Parameters from scorekit's buffer: weight (out, in) then bias per layer."""
        off = 0
        with torch.no_grad():
            for lin in self.linears():
                for p in (lin.weight, lin.bias):
                    n = p.numel()
                    p.copy_(torch.from_numpy(flat[off:off + n]).view_as(p))
                    off += n
        assert off == flat.size, (off, flat.size)

    def flat_grads(self):
        return torch.cat([p.grad.reshape(-1) for lin in self.linears()
                          for p in (lin.weight, lin.bias)]).numpy()

    def flat_params(self):
        return torch.cat([p.detach().reshape(-1) for lin in self.linears()
                          for p in (lin.weight, lin.bias)]).numpy()


def half_sq_rows(a):
    return 0.5 * a.square().sum(dim=1)


def loss_fn(model, obj, inp):
    """The batch loss of docs/MATH.md (per-sample sum over d, mean over rows)."""
    x, z, v, sigma = inp["x"], inp.get("z"), inp.get("v"), inp.get("sigma")
    if obj is None:  # the foundation workload: mean(s²)
        return model(x).square().mean()
    if obj == "dsm":
        return half_sq_rows(model(x + sigma * z) + z / sigma).mean()
    if obj == "ncsn":
        return half_sq_rows(sigma * model(x + sigma * z, sigma) + z).mean()
    x = x.detach().requires_grad_(True)
    s = model(x)
    if obj in ("ssm", "ssm-vr"):
        u = (v * s).sum(dim=1)  # vᵀs per row
        (gv,) = torch.autograd.grad(u.sum(), x, create_graph=True)  # ∇ₓ(vᵀs)
        # ssm's second term is ½(vᵀs)², ssm-vr's its expectation over v, ½‖s‖²
        second = 0.5 * u.square() if obj == "ssm" else half_sq_rows(s)
        return ((v * gv).sum(dim=1) + second).mean()
    if obj == "esm":
        tr = 0
        for j in range(DIM):
            (gj,) = torch.autograd.grad(s[:, j].sum(), x, create_graph=True)
            tr = tr + gj[:, j]
        return (half_sq_rows(s) + tr).mean()
    raise ValueError(obj)


def make_inputs(obj, batch, gen):
    """Fixed inputs drawn as bench_mlp.c draws them (in distribution, not bits)."""
    inp = {"x": torch.randn(batch, DIM, generator=gen)}
    if obj in ("dsm", "ncsn"):
        inp["z"] = torch.randn(batch, DIM, generator=gen)
    if obj in ("ssm", "ssm-vr"):
        inp["v"] = torch.randn(batch, DIM, generator=gen)
    if obj == "dsm":
        inp["sigma"] = torch.full((batch, 1), DSM_SIGMA)
    if obj == "ncsn":
        ladder = SIGMA_FIRST * (SIGMA_LAST / SIGMA_FIRST) ** (
            torch.arange(N_LEVELS, dtype=torch.float32) / (N_LEVELS - 1))
        inp["sigma"] = ladder[torch.randint(N_LEVELS, (batch, 1), generator=gen)]
    return inp


class Bench:
    def __init__(self, name):
        cond, depth, hidden, batch, self.obj = WORKLOADS[name]
        torch.manual_seed(42)
        self.model = Score(cond, depth, hidden)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3) if self.obj else None
        self.inp = make_inputs(self.obj, batch, torch.Generator().manual_seed(1234))

    def step(self):
        if self.opt:
            self.opt.zero_grad(set_to_none=True)
        else:
            for p in self.model.parameters():
                p.grad = None
        loss = loss_fn(self.model, self.obj, self.inp)
        loss.backward()
        if self.opt:
            self.opt.step()
        return loss


def bench_time(b, warmup, iters, repeats):
    t0, n_warm = time.perf_counter(), 0
    while time.perf_counter() - t0 < warmup or n_warm < 3:
        b.step()
        n_warm += 1
    if iters <= 0:  # about 0.25 s per repeat at the speed after warm-up
        s = time.perf_counter()
        for _ in range(5):
            b.step()
        iters = max(3, int(0.25 / ((time.perf_counter() - s) / 5)))
    runs = []
    for _ in range(repeats):
        s = time.perf_counter()
        for _ in range(iters):
            b.step()
        runs.append((time.perf_counter() - s) / iters)
    return sorted(runs)[repeats // 2], iters


def check(root, names):
    """Recomputes each dumped step from scorekit's parameters and inputs and
    compares loss, gradients and post-Adam parameters; returns the number of
    failures."""
    failures = 0
    for name in names:
        d = os.path.join(root, name)
        if not os.path.isdir(d):
            continue
        cond, depth, _, _, obj = WORKLOADS[name]
        load = lambda f: np.load(os.path.join(d, f + ".npy"))
        flat = load("params")
        with open(os.path.join(d, "tensors.txt")) as f:
            tensors = [line.split() for line in f]
        b = Bench(name)
        prefix = "ncmlp" if cond else "mlp"
        names_torch = [f"{prefix}.{i}.{w}" for i in range(depth + 1) for w in ("weight", "bias")]
        if [t[0] for t in tensors] != names_torch:
            print(f"CHECK {name}: tensor names {[t[0] for t in tensors]} != {names_torch}")
            failures += 1
            continue
        b.model.load_flat(flat)
        b.inp = {k: torch.from_numpy(load(k)) for k in ("x", "z", "v", "sigma")
                 if os.path.exists(os.path.join(d, k + ".npy"))}
        if obj:
            b.opt = torch.optim.Adam(b.model.parameters(), lr=1e-3)
        loss = b.step().item()
        grads = b.model.flat_grads()
        sk_loss, sk_grads = float(load("loss")[0]), load("grads")
        gerr = np.abs(grads - sk_grads).max() / max(np.abs(grads).max(), 1e-30)
        lerr = abs(loss - sk_loss) / max(abs(loss), 1e-30)
        msg = f"CHECK {name}: loss torch {loss:.6g} scorekit {sk_loss:.6g} (rel {lerr:.1e}), " \
              f"grads max rel {gerr:.1e}"
        ok = lerr < 1e-4 and gerr < 1e-3
        if obj:
            # Adam's first step is lr·g/(|g| + eps): for |g| near eps it turns
            # a gradient difference far below the tolerance above into a
            # visible parameter difference. So the optimiser is checked on
            # its own: torch's Adam from scorekit's gradients.
            b.model.load_flat(flat)
            off = 0
            for lin in b.model.linears():
                for p in (lin.weight, lin.bias):
                    n = p.numel()
                    p.grad = torch.from_numpy(sk_grads[off:off + n].copy()).view_as(p)
                    off += n
            torch.optim.Adam(b.model.parameters(), lr=1e-3).step()
            perr = np.abs(b.model.flat_params() - load("params_after")).max()
            msg += f", Adam step from the same gradients max abs {perr:.1e}"
            ok = ok and perr < 1e-6
        print(msg + (" ok" if ok else " MISMATCH"))
        failures += not ok
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only")
    ap.add_argument("--iters", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--check", metavar="DIR")
    a = ap.parse_args()
    names = [a.only] if a.only else list(WORKLOADS)
    if any(n not in WORKLOADS for n in names):
        ap.error(f"unknown workload {a.only}; one of {' '.join(WORKLOADS)}")
    torch.set_num_threads(a.threads)
    if a.check:
        torch.set_num_threads(1)
        sys.exit(1 if check(a.check, names) else 0)
    print(f"# torch {torch.__version__} threads {torch.get_num_threads()}")
    for name in names:
        b = Bench(name)
        sec, iters = bench_time(b, a.warmup, a.iters, a.repeats)
        print(f"RESULT {name} {1 / sec:.2f} steps/s ({1e6 * sec:.1f} us/step, "
              f"median of {a.repeats} x {iters})")
        # ru_maxrss is in KiB on Linux; one workload per process (--only) makes
        # it that workload's peak.
        print(f"MAXRSS {name} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", flush=True)


if __name__ == "__main__":
    main()
