#!/usr/bin/env python3
"""Load a scorekit model.safetensors into the equivalent PyTorch module.

    python3 tools/load_model.py MODEL.safetensors [--x X.npy --sigma S --expect S.npy]
                                [--ema] [--backend torch|numpy]

Reads the file with the `safetensors` package if it is installed, else with
NumPy alone (the format is a u64 header length, a JSON header and raw data).
With --x, evaluates the score s(x, sigma) and, with --expect (scorekit's own
`scorekit score` output), exits 1 unless they agree to 1e-5 relative.
"""
import argparse
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    """Returns ({name: float32 array}, metadata dict), using NumPy only."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    dtypes = {"F32": "<f4", "F64": "<f8", "F16": "<f2"}
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        a = np.frombuffer(raw[base + b:base + end], dtype=dtypes[e["dtype"]])
        tensors[name] = a.reshape(e["shape"]).astype(np.float32)
    return tensors, meta


def load(path, ema=False):
    try:
        from safetensors.numpy import load_file
        from safetensors import safe_open
        tensors = load_file(path)
        with safe_open(path, "np") as f:
            meta = f.metadata() or {}
    except ImportError:
        tensors, meta = read_safetensors(path)
    cfg = json.loads(meta["scorekit"])
    prefix = {"mlp": "mlp", "ncmlp": "ncmlp", "classifier": "clf"}[cfg["kind"]]
    if ema:
        prefix = "ema." + prefix
    layers = [(tensors[f"{prefix}.{i}.weight"], tensors[f"{prefix}.{i}.bias"])
              for i in range(cfg["depth"] + 1)]
    return cfg, layers


def numpy_act(name, h):
    h = h.astype(np.float64)
    if name == "softplus":
        return np.logaddexp(0.0, h)
    if name == "elu":
        return np.where(h > 0, h, np.expm1(np.minimum(h, 0)))
    if name == "silu":
        return h / (1 + np.exp(-h))
    return np.tanh(h)


def score_numpy(cfg, layers, x, sigma):
    h = x.astype(np.float64)
    if cfg["kind"] != "mlp":
        h = np.concatenate([h, np.full((len(x), 1), np.log(sigma))], axis=1)
    for i, (w, b) in enumerate(layers):
        h = h @ w.T.astype(np.float64) + b
        if i < len(layers) - 1:
            h = numpy_act(cfg["activation"], h)
    return h / sigma if cfg["kind"] == "ncmlp" else h


def torch_module(cfg, layers):
    """An nn.Module computing the score: nn.Linear layers with the same names."""
    import torch

    acts = {"softplus": torch.nn.Softplus, "elu": torch.nn.ELU, "silu": torch.nn.SiLU,
            "tanh": torch.nn.Tanh}

    class Score(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList(
                torch.nn.Linear(w.shape[1], w.shape[0]) for w, _ in layers)
            self.act = acts[cfg["activation"]]()
            with torch.no_grad():
                for lin, (w, b) in zip(self.layers, layers):
                    lin.weight.copy_(torch.from_numpy(w))
                    lin.bias.copy_(torch.from_numpy(b))

        def forward(self, x, sigma=None):
            h = x
            if cfg["kind"] != "mlp":
                h = torch.cat([x, torch.log(sigma).expand(len(x), 1)], dim=1)
            for i, lin in enumerate(self.layers):
                h = lin(h)
                if i < len(self.layers) - 1:
                    h = self.act(h)
            return h / sigma if cfg["kind"] == "ncmlp" else h

    return Score()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--x", help="points (n, d) as .npy")
    ap.add_argument("--sigma", type=float, help="noise level (default: the ladder's smallest)")
    ap.add_argument("--expect", help="scorekit's scores for --x, to compare with")
    ap.add_argument("--ema", action="store_true")
    ap.add_argument("--backend", choices=["torch", "numpy"])
    a = ap.parse_args()
    cfg, layers = load(a.model, a.ema)
    print(f"{cfg['kind']} {cfg['depth']}x{cfg['hidden']} {cfg['activation']}, "
          f"dim {cfg['dim']}, {sum(w.size + b.size for w, b in layers)} parameters")
    if not a.x:
        return 0
    sigma = a.sigma or (cfg["sigmas"][-1] if cfg.get("sigmas") else cfg.get("sigma", 1.0))
    x = np.load(a.x).astype(np.float32)
    backend = a.backend
    if backend is None:
        try:
            import torch  # noqa: F401
            backend = "torch"
        except ImportError:
            backend = "numpy"
    if backend == "torch":
        import torch
        torch.set_default_dtype(torch.float32)
        with torch.no_grad():
            s = torch_module(cfg, layers)(torch.from_numpy(x), torch.tensor(sigma)).numpy()
    else:
        s = score_numpy(cfg, layers, x, sigma)
    print(f"{backend}: scores of {len(x)} points at sigma {sigma:g}")
    if a.expect:
        ref = np.load(a.expect)
        rel = np.max(np.abs(s - ref)) / max(np.max(np.abs(ref)), 1e-30)
        print(f"max |{backend} - scorekit| / max |scorekit| = {rel:.3g}")
        return 0 if rel <= 1e-5 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
