#!/usr/bin/env python3
"""Load a scorekit model.safetensors into the equivalent PyTorch module.

    python3 tools/load_model.py MODEL.safetensors [--x X.npy --sigma S --expect S.npy]
                                [--ema] [--backend torch|numpy]

Reads the file with the `safetensors` package if it is installed, else with
NumPy alone (the format is a u64 header length, a JSON header and raw data).
With --x, evaluates the score s(x, sigma) and, with --expect (scorekit's own
`scorekit score` output), exits 1 unless they agree to 1e-5 relative.

MLPs load into nn.Linear stacks (or run in NumPy); a U-Net (kind "unet")
loads into unet_class(), the score-SDE tutorial's ScoreNet with the same
module names, and a convolutional classifier (kind "convnet") into
convnet_class(), whose output is the logits; both need PyTorch.
"""
import argparse
import json
import math
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
    if cfg["kind"] in ("ncmlp", "unet") and cfg.get("classes", 0) > 0:
        # The label embedding (label_embed.weight) has no counterpart here yet.
        sys.exit(f"{path}: a class-conditional model ({cfg['classes']} classes): "
                 "not supported by this loader")
    if cfg["kind"] in ("unet", "convnet"):
        # The twin's state_dict: the weights (or their EMA) under plain names.
        pre = "ema." if ema else ""
        return cfg, {k: tensors[pre + k] for k in tensors if not k.startswith("ema.")}
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


def torch_blocks():
    """The score-SDE tutorial's Gaussian Fourier features (fixed frequencies
    W, a parameter without gradient) and Dense (a Linear added per channel)."""
    import torch
    from torch import nn

    class GaussianFourierProjection(nn.Module):
        def __init__(self, embed_dim, scale):
            super().__init__()
            self.W = nn.Parameter(torch.randn(embed_dim // 2) * scale, requires_grad=False)

        def forward(self, x):
            x_proj = x[:, None] * self.W[None, :] * 2 * math.pi
            return torch.cat([torch.sin(x_proj), torch.cos(x_proj)], dim=-1)

    class Dense(nn.Module):
        def __init__(self, input_dim, output_dim):
            super().__init__()
            self.dense = nn.Linear(input_dim, output_dim)

        def forward(self, x):
            return self.dense(x)[..., None, None]

    return GaussianFourierProjection, Dense


def unet_class():
    """The score-SDE tutorial's small U-Net (ScoreNet) as scorekit builds it:
    3x3 convolutions without padding, 28 -> 26 -> 12 -> 5 -> 2 and back through
    transposed ones with skips concatenated; after each but the last, a Dense
    of the noise embedding, GroupNorm and swish. The embedding is Gaussian
    Fourier features of log sigma (fixed frequencies W, a parameter without
    gradient as in the tutorial), a Linear and swish; the output is divided by
    sigma. With other channels the group counts are gcd(4 or 32, C), the
    tutorial's whenever they divide C."""
    import torch
    from torch import nn

    GaussianFourierProjection, Dense = torch_blocks()

    class UNet(nn.Module):
        def __init__(self, channels=(32, 64, 128, 256), image=(1, 28, 28), embed_dim=256,
                     scale=16.0):
            super().__init__()
            c, ic = list(channels), image[0]
            self.image = tuple(image)
            self.embed = nn.Sequential(GaussianFourierProjection(embed_dim, scale),
                                       nn.Linear(embed_dim, embed_dim))
            gn = lambda groups, ch: nn.GroupNorm(math.gcd(groups, ch), ch)
            self.conv1 = nn.Conv2d(ic, c[0], 3, stride=1, bias=False)
            self.dense1 = Dense(embed_dim, c[0])
            self.gnorm1 = gn(4, c[0])
            self.conv2 = nn.Conv2d(c[0], c[1], 3, stride=2, bias=False)
            self.dense2 = Dense(embed_dim, c[1])
            self.gnorm2 = gn(32, c[1])
            self.conv3 = nn.Conv2d(c[1], c[2], 3, stride=2, bias=False)
            self.dense3 = Dense(embed_dim, c[2])
            self.gnorm3 = gn(32, c[2])
            self.conv4 = nn.Conv2d(c[2], c[3], 3, stride=2, bias=False)
            self.dense4 = Dense(embed_dim, c[3])
            self.gnorm4 = gn(32, c[3])
            self.tconv4 = nn.ConvTranspose2d(c[3], c[2], 3, stride=2, bias=False)
            self.dense5 = Dense(embed_dim, c[2])
            self.tgnorm4 = gn(32, c[2])
            self.tconv3 = nn.ConvTranspose2d(c[2] + c[2], c[1], 3, stride=2, bias=False,
                                             output_padding=1)
            self.dense6 = Dense(embed_dim, c[1])
            self.tgnorm3 = gn(32, c[1])
            self.tconv2 = nn.ConvTranspose2d(c[1] + c[1], c[0], 3, stride=2, bias=False,
                                             output_padding=1)
            self.dense7 = Dense(embed_dim, c[0])
            self.tgnorm2 = gn(32, c[0])
            self.tconv1 = nn.ConvTranspose2d(c[0] + c[0], ic, 3, stride=1)

        @staticmethod
        def act(x):
            return x * torch.sigmoid(x)

        def forward(self, x, sigma):
            """x: images (N, C, H, W) or rows (N, C*H*W); sigma: a number or N of them."""
            n, rows = x.shape[0], x.dim() == 2
            if rows:
                x = x.reshape(n, *self.image)
            sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1).expand(n)
            embed = self.act(self.embed(torch.log(sigma)))
            h1 = self.act(self.gnorm1(self.conv1(x) + self.dense1(embed)))
            h2 = self.act(self.gnorm2(self.conv2(h1) + self.dense2(embed)))
            h3 = self.act(self.gnorm3(self.conv3(h2) + self.dense3(embed)))
            h4 = self.act(self.gnorm4(self.conv4(h3) + self.dense4(embed)))
            h = self.act(self.tgnorm4(self.tconv4(h4) + self.dense5(embed)))
            h = self.act(self.tgnorm3(self.tconv3(torch.cat([h, h3], dim=1)) + self.dense6(embed)))
            h = self.act(self.tgnorm2(self.tconv2(torch.cat([h, h2], dim=1)) + self.dense7(embed)))
            h = self.tconv1(torch.cat([h, h1], dim=1))
            h = h / sigma[:, None, None, None]
            return h.reshape(n, -1) if rows else h

    return UNet


def convnet_class():
    """scorekit's noise-conditional convolutional classifier: three 3x3
    convolutions without padding or bias (strides 1, 2, 2), each followed by
    a Dense of the U-Net's noise embedding, GroupNorm (gcd(4 or 32, C)
    groups) and swish; the mean over positions (the features); a Linear to
    the logits. Its state_dict names are those of the model file."""
    import torch
    from torch import nn

    Fourier, Dense = torch_blocks()

    class ConvNet(nn.Module):
        def __init__(self, channels=(32, 64, 128), image=(1, 28, 28), classes=10, embed_dim=128,
                     scale=16.0):
            super().__init__()
            c = [image[0]] + list(channels)
            self.image = tuple(image)
            self.embed = nn.Sequential(Fourier(embed_dim, scale), nn.Linear(embed_dim, embed_dim))
            for k in range(3):
                setattr(self, f"conv{k + 1}",
                        nn.Conv2d(c[k], c[k + 1], 3, stride=1 if k == 0 else 2, bias=False))
                setattr(self, f"dense{k + 1}", Dense(embed_dim, c[k + 1]))
                setattr(self, f"gnorm{k + 1}",
                        nn.GroupNorm(math.gcd(4 if k == 0 else 32, c[k + 1]), c[k + 1]))
            self.fc = nn.Linear(c[3], classes)

        @staticmethod
        def act(x):
            return x * torch.sigmoid(x)

        def features(self, x, sigma):
            """x: images (N, C, H, W) or rows (N, C*H*W); sigma: a number or N of them."""
            n = x.shape[0]
            if x.dim() == 2:
                x = x.reshape(n, *self.image)
            sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1).expand(n)
            embed = self.act(self.embed(torch.log(sigma)))
            h = x
            for k in range(1, 4):
                h = getattr(self, f"conv{k}")(h) + getattr(self, f"dense{k}")(embed)
                h = self.act(getattr(self, f"gnorm{k}")(h))
            return h.mean(dim=(2, 3))

        def forward(self, x, sigma):
            return self.fc(self.features(x, sigma))

    return ConvNet


def torch_convnet(cfg, state=None):
    """The convnet of a scorekit config, with the weights of `state` when given."""
    import torch

    net = convnet_class()(cfg["channels"], cfg["image"], cfg["classes"], cfg["embed"],
                          cfg["embed_scale"])
    if state is not None:
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return net


def torch_unet(cfg, state=None):
    """The U-Net of a scorekit config, with the weights of `state` (NumPy
    arrays under the module names) when given."""
    import torch

    net = unet_class()(cfg["channels"], cfg["image"], cfg["embed"], cfg["embed_scale"])
    if state is not None:
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return net


def torch_module(cfg, layers):
    """An nn.Module computing the score: nn.Linear layers with the same names
    (or, for a U-Net, unet_class() with the file's weights)."""
    import torch

    if cfg["kind"] == "unet":
        return torch_unet(cfg, layers)
    if cfg["kind"] == "convnet":
        return torch_convnet(cfg, layers)
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
    if cfg["kind"] == "convnet":
        print(f"convnet channels {cfg['channels']}, image {cfg['image']}, classes "
              f"{cfg['classes']}, embed {cfg['embed']}, "
              f"{sum(v.size for v in layers.values())} parameters")
    elif cfg["kind"] == "unet":
        print(f"unet channels {cfg['channels']}, image {cfg['image']}, embed {cfg['embed']}, "
              f"dim {cfg['dim']}, {sum(v.size for v in layers.values())} parameters")
    else:
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
    if cfg["kind"] in ("unet", "convnet") and backend == "numpy":
        print("a U-Net or convnet needs --backend torch (PyTorch)", file=sys.stderr)
        return 2
    if backend == "torch":
        import torch
        torch.set_default_dtype(torch.float32)
        with torch.no_grad():
            s = torch_module(cfg, layers)(torch.from_numpy(x), torch.tensor(sigma)).numpy()
    else:
        s = score_numpy(cfg, layers, x, sigma)
    what = "logits" if cfg["kind"] in ("classifier", "convnet") else "scores"
    print(f"{backend}: {what} of {len(x)} points at sigma {sigma:g}")
    if a.expect:
        ref = np.load(a.expect)
        rel = np.max(np.abs(s - ref)) / max(np.max(np.abs(ref)), 1e-30)
        print(f"max |{backend} - scorekit| / max |scorekit| = {rel:.3g}")
        return 0 if rel <= 1e-5 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
