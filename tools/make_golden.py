#!/usr/bin/env python3
"""Regenerates the golden values of tests/test_golden.c in tests/golden/.

    /usr/bin/python3 tools/make_golden.py            # writes tests/golden/
    /usr/bin/python3 tools/make_golden.py --out DIR  # writes DIR instead

Needs NumPy and PyTorch (Debian: python3-numpy, python3-torch); the test itself
reads only the committed files. The inputs (weights, data, noise, projections,
the sigma ladder and the level of each row) are float32, drawn from a fixed
seed; every output is float64, computed with PyTorch autograd in float64 from
exactly those float32 numbers. Formulas and conventions: docs/MATH.md (sum
over the data dimensions, mean over the batch). The same command on the same
library versions writes the same bytes.

Files (NumPy .npy, C order; meta.json lists each with its shape and dtype):
  mlp.{0,1,2}.{weight,bias}        float32  unconditional score MLP 2-16-16-2,
                                            nn.Linear layout: h = x W^T + b,
                                            softplus after every layer but the last
  ncmlp.{0..3}.{weight,bias}       float32  noise-conditional MLP f: 3-16-16-16-2,
                                            s(x, sigma) = f([x, log sigma]) / sigma
  x, v, z (8, 2)                   float32  data, projections, noise (all N(0, I))
  sigmas (10,)                     float32  geometric ladder 10 ... 0.05, largest first
  levels (8,)                      int32    the ladder index of each row (ncsn)
  vesde_u (8,)                     float32  U[0, 1) draw of each row (vesde)
  vesde_sigma (8,)                 float32  its sigma: sigmas[-1] (sigmas[0]/sigmas[-1])^u,
                                            in float64 from the float32 ends, rounded
  score (8, 2), trace (8,)         float64  s(x) and tr grad_x s(x) of the MLP
  loss_<obj> (1,)                  float64  obj in esm, dsm (sigma = float32(0.1)),
                                            ssm, ssm_vr (mlp), ncsn and vesde (ncmlp)
  grad_<obj>.<tensor>              float64  d loss_<obj> / d tensor
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

SEED = 20250611
BATCH, DIM, HIDDEN = 8, 2, 16
MLP_HIDDEN_LAYERS, NCMLP_HIDDEN_LAYERS = 2, 3
SIGMA_MAX, SIGMA_MIN, LEVELS = 10.0, 0.05, 10
DSM_SIGMA = np.float32(0.1)  # the C test sets 0.1f
OBJECTIVES = ("esm", "dsm", "ssm", "ssm_vr", "ncsn", "vesde")


def linear_shapes(n_in, n_hidden_layers, n_out):
    """(out, in) of each nn.Linear of an MLP n_in -> HIDDEN^n_hidden_layers -> n_out."""
    widths = [n_in] + [HIDDEN] * n_hidden_layers + [n_out]
    return [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]


def make_inputs(seed=SEED):
    """All float32 inputs, in a fixed order of draws from one PCG64 stream."""
    rng = np.random.Generator(np.random.PCG64(seed))
    inputs = {}
    # nn.Linear's default initialisation: U(-1/sqrt(in), 1/sqrt(in)).
    for prefix, n_in, layers in (("mlp", DIM, MLP_HIDDEN_LAYERS),
                                 ("ncmlp", DIM + 1, NCMLP_HIDDEN_LAYERS)):
        for i, (o, n) in enumerate(linear_shapes(n_in, layers, DIM)):
            k = 1.0 / np.sqrt(n)
            inputs[f"{prefix}.{i}.weight"] = rng.uniform(-k, k, (o, n)).astype(np.float32)
            inputs[f"{prefix}.{i}.bias"] = rng.uniform(-k, k, (o,)).astype(np.float32)
    for name in ("x", "v", "z"):
        inputs[name] = rng.standard_normal((BATCH, DIM)).astype(np.float32)
    ladder = SIGMA_MAX * (SIGMA_MIN / SIGMA_MAX) ** (np.arange(LEVELS) / (LEVELS - 1))
    inputs["sigmas"] = ladder.astype(np.float32)
    inputs["levels"] = rng.integers(0, LEVELS, BATCH).astype(np.int32)
    # Drawn last, so that the inputs above keep their values.
    u = rng.random(BATCH).astype(np.float32)
    inputs["vesde_u"] = u
    smax, smin = float(inputs["sigmas"][0]), float(inputs["sigmas"][-1])
    inputs["vesde_sigma"] = np.array([smin * (smax / smin) ** float(x) for x in u], dtype=np.float32)
    return inputs


def softplus(h):
    # log(1 + e^h) without PyTorch's threshold (F.softplus returns h above 20).
    return torch.logaddexp(h, torch.zeros_like(h))


def mlp(params, prefix, h):
    n = sum(1 for k in params if k.startswith(prefix + ".") and k.endswith(".weight"))
    for i in range(n):
        h = h @ params[f"{prefix}.{i}.weight"].T + params[f"{prefix}.{i}.bias"]
        if i < n - 1:
            h = softplus(h)
    return h


def score_mlp(params, x):
    return mlp(params, "mlp", x)


def score_ncmlp(params, x, sigma):
    """s(x, sigma) = f([x, log sigma]) / sigma; sigma is (B, 1)."""
    return mlp(params, "ncmlp", torch.cat([x, torch.log(sigma)], dim=1)) / sigma


def grad_x(y, x):
    """d(sum y)/dx, kept differentiable (the losses are differentiated again)."""
    return torch.autograd.grad(y.sum(), x, create_graph=True)[0]


def trace_jacobian(s, x):
    """tr grad_x s(x) per row: one backward pass per output dimension."""
    return sum(grad_x(s[:, j], x)[:, j] for j in range(s.shape[1]))


def losses(params, t):
    """Each objective's batch loss (a 0-d tensor), plus score and trace at x."""
    x = t["x"].clone().requires_grad_(True)
    out = {}
    s = score_mlp(params, x)
    tr = trace_jacobian(s, x)
    out["score"], out["trace"] = s, tr
    out["esm"] = (0.5 * (s * s).sum(1) + tr).mean()

    sigma = torch.tensor(float(DSM_SIGMA), dtype=torch.float64)
    xt = t["x"] + sigma * t["z"]
    out["dsm"] = (0.5 * ((score_mlp(params, xt) + t["z"] / sigma) ** 2).sum(1)).mean()

    v = t["v"]
    u = (v * s).sum(1)                 # v^T s
    vjv = (v * grad_x(u, x)).sum(1)    # v^T (grad_x s) v = v^T grad_x (v^T s)
    out["ssm"] = (vjv + 0.5 * u * u).mean()
    out["ssm_vr"] = (vjv + 0.5 * (s * s).sum(1)).mean()

    sb = t["sigmas"][t["levels"].long()].unsqueeze(1)  # (B, 1)
    xt = t["x"] + sb * t["z"]
    out["ncsn"] = (0.5 * ((sb * score_ncmlp(params, xt, sb) + t["z"]) ** 2).sum(1)).mean()

    sv = t["vesde_sigma"].unsqueeze(1)  # (B, 1), continuous
    xt = t["x"] + sv * t["z"]
    out["vesde"] = (0.5 * ((sv * score_ncmlp(params, xt, sv) + t["z"]) ** 2).sum(1)).mean()
    return out


def compute(inputs):
    """float64 outputs from the float32 inputs (a dict of NumPy arrays)."""
    torch.set_num_threads(1)  # one summation order: the same bits every run
    t = {k: torch.from_numpy(np.asarray(a)).to(torch.float64) for k, a in inputs.items()}
    t["levels"] = torch.from_numpy(np.asarray(inputs["levels"])).long()
    params = {k: a.clone().requires_grad_(True) for k, a in t.items()
              if k.startswith(("mlp.", "ncmlp."))}
    res = losses(params, t)
    outputs = {"score": res["score"].detach().numpy(), "trace": res["trace"].detach().numpy()}
    for obj in OBJECTIVES:
        prefix = "ncmlp" if obj in ("ncsn", "vesde") else "mlp"
        names = sorted(k for k in params if k.startswith(prefix + "."))
        grads = torch.autograd.grad(res[obj], [params[k] for k in names], retain_graph=True)
        outputs[f"loss_{obj}"] = res[obj].detach().reshape(1).numpy()
        for k, g in zip(names, grads):
            outputs[f"grad_{obj}.{k}"] = g.numpy()
    return {k: np.ascontiguousarray(a, dtype=np.float64) for k, a in outputs.items()}


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden"),
                    help="output folder (default: tests/golden)")
    args = ap.parse_args(argv)
    inputs = make_inputs()
    arrays = dict(inputs)
    arrays.update(compute(inputs))
    os.makedirs(args.out, exist_ok=True)
    for name, a in sorted(arrays.items()):
        np.save(os.path.join(args.out, name + ".npy"), a, allow_pickle=False)
    meta = {
        "generator": "tools/make_golden.py",
        "seed": SEED,
        "batch": BATCH,
        "d": DIM,
        "hidden": HIDDEN,
        "mlp_hidden_layers": MLP_HIDDEN_LAYERS,
        "ncmlp_hidden_layers": NCMLP_HIDDEN_LAYERS,
        "activation": "softplus",
        "dsm_sigma": float(DSM_SIGMA),
        "files": {k: [list(a.shape), str(a.dtype)] for k, a in sorted(arrays.items())},
    }
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(arrays)} arrays and meta.json to {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main(sys.argv[1:])
