#!/usr/bin/env python3
"""Regenerates the golden values of tests/test_golden_images.c in tests/golden/images/.

    /usr/bin/python3 tools/make_golden_images.py            # writes tests/golden/images/
    /usr/bin/python3 tools/make_golden_images.py --out DIR  # writes DIR instead

Needs NumPy and PyTorch (Debian: python3-numpy, python3-torch); the test itself
reads only the committed files. Two image models, each checked through its loss
and every parameter gradient:

- the U-Net of tools/load_model.py (unet_class, the score-SDE tutorial's
  ScoreNet with scorekit's group-count rule) at small widths (channels 12, 24,
  24, 24, embedding 32, frequency scale 16, 28x28 images), under denoising
  score matching with a noise level per row from a ladder and lambda(sigma) =
  sigma^2 (scorekit's ncsn objective): (1/B) sum_b 1/2 |sigma_b s(x~_b, sigma_b)
  + z_b|^2 with x~ = x + sigma z; also the score s(x~, sigma) itself. The
  widths give every group norm 3 channels a group (gcd(4, 12) = 4 and
  gcd(32, 24) = 8 groups): with one channel a group (the tutorial's tgnorm2,
  or powers of two up to 32) the normalisation cancels the Dense shift before
  it and that Dense's gradient is zero, which a relative comparison cannot
  check;
- a small convolutional network on 8x8 images, conv 3x3 (1->4, stride 1,
  padding 1) + bias, softplus, conv 3x3 (4->4, stride 2, padding 1) + bias,
  SiLU, transposed conv 3x3 (4->1, stride 2, padding 1, output padding 1) +
  bias, under sliced score matching (v^T grad_x(v^T s) + 1/2 (v^T s)^2, mean
  over rows): second derivatives through all three convolution ops.

The inputs are float32 from a fixed seed (PyTorch's default initialisation
ranges, group-norm scales and shifts moved off 1 and 0 so that their gradients
are not special); every output is float64 from PyTorch autograd on exactly those
float32 numbers. The U-Net's ladder stays within [0.5, 2] on purpose: the
embedding sin(2 pi W log sigma) with W ~ N(0, 16^2) turns the float32 rounding
of log sigma and of the product (relative 1e-7) into an absolute error of about
1e-7 |2 pi W log sigma| in each feature, up to 3e-5 for sigma near 0.1 or 10
and below 6e-6 within [0.5, 2]. Measured: the worst relative error of the test
is 2.6e-6 with this ladder and 9.4e-6, at the tolerance's edge, with 10 ... 0.1.

Files (NumPy .npy, C order; meta.json lists each with its shape and dtype):
  unet.<tensor>              float32  the U-Net's weights under its module names
  unet_x, unet_z (4, 784)    float32  images in [0, 1], noise N(0, I)
  unet_sigmas (4,)           float32  geometric ladder 2 ... 0.5, largest first
  unet_levels (4,)           int32    the ladder index of each row
  unet_loss (1,)             float64
  unet_score (4, 784)        float64  s(x~, sigma) per row
  unet_grad.<tensor>         float64  d unet_loss / d tensor (not embed.0.W, fixed)
  conv.<tensor>              float32  conv1.{weight,bias}, conv2.{weight,bias},
                                      tconv.{weight,bias} (ConvTranspose2d layout)
  conv_x, conv_v (4, 64)     float32  data and projections, N(0, I)
  conv_loss (1,)             float64
  conv_grad.<tensor>         float64
The same command on the same library versions writes the same bytes.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_model import unet_class  # noqa: E402  (the twin users load models into)

SEED = 20250612
BATCH = 4
UNET = {"channels": [12, 24, 24, 24], "image": [1, 28, 28], "embed": 32, "embed_scale": 16.0}
SIGMA_MAX, SIGMA_MIN, LEVELS = 2.0, 0.5, 4
CONV_SIDE, CONV_CH = 8, 4


def uniform(rng, bound, shape):
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def make_inputs(seed=SEED):
    """All float32 inputs, in a fixed order of draws from one PCG64 stream."""
    rng = np.random.Generator(np.random.PCG64(seed))
    inputs = {}
    # The twin's own parameters give the names and shapes in state_dict order.
    net = unet_class()(UNET["channels"], UNET["image"], UNET["embed"], UNET["embed_scale"])
    for name, p in net.state_dict().items():
        shape = tuple(p.shape)
        if name == "embed.0.W":
            a = rng.standard_normal(shape) * UNET["embed_scale"]
        elif "norm" in name:  # GroupNorm: scale near 1, shift near 0
            a = (1.0 if name.endswith("weight") else 0.0) + rng.uniform(-0.3, 0.3, shape)
        else:  # PyTorch's default: U(+-1/sqrt(fan_in)), fan_in = shape[1] * kernel
            w = net.state_dict()[name.replace(".bias", ".weight")]
            fan_in = w.shape[1] * (w.shape[2] * w.shape[3] if w.dim() == 4 else 1)
            a = uniform(rng, 1.0 / np.sqrt(fan_in), shape)
        inputs["unet." + name] = np.asarray(a, dtype=np.float32)
    d = int(np.prod(UNET["image"]))
    inputs["unet_x"] = rng.uniform(0.0, 1.0, (BATCH, d)).astype(np.float32)
    inputs["unet_z"] = rng.standard_normal((BATCH, d)).astype(np.float32)
    ladder = SIGMA_MAX * (SIGMA_MIN / SIGMA_MAX) ** (np.arange(LEVELS) / (LEVELS - 1))
    inputs["unet_sigmas"] = ladder.astype(np.float32)
    inputs["unet_levels"] = rng.permutation(LEVELS)[:BATCH].astype(np.int32)

    c = CONV_CH
    for name, shape, fan_in in (("conv1.weight", (c, 1, 3, 3), 9), ("conv1.bias", (c,), 9),
                                ("conv2.weight", (c, c, 3, 3), 9 * c), ("conv2.bias", (c,), 9 * c),
                                ("tconv.weight", (c, 1, 3, 3), 9), ("tconv.bias", (1,), 9)):
        inputs["conv." + name] = uniform(rng, 1.0 / np.sqrt(fan_in), shape)
    for name in ("conv_x", "conv_v"):
        inputs[name] = rng.standard_normal((BATCH, CONV_SIDE * CONV_SIDE)).astype(np.float32)
    return inputs


def unet_outputs(t):
    net = unet_class()(UNET["channels"], UNET["image"], UNET["embed"], UNET["embed_scale"])
    net = net.double()
    net.load_state_dict({k[5:]: v for k, v in t.items() if k.startswith("unet.")})
    sb = t["unet_sigmas"][t["unet_levels"].long()].unsqueeze(1)  # (B, 1)
    xt = t["unet_x"] + sb * t["unet_z"]
    s = net(xt, sb)
    loss = (0.5 * ((sb * s + t["unet_z"]) ** 2).sum(1)).mean()
    names = [k for k, p in net.named_parameters() if p.requires_grad]
    params = dict(net.named_parameters())
    grads = torch.autograd.grad(loss, [params[k] for k in names])
    out = {"unet_loss": loss.detach().reshape(1), "unet_score": s.detach()}
    out.update({f"unet_grad.{k}": g for k, g in zip(names, grads)})
    return out


def softplus(h):
    # log(1 + e^h) without PyTorch's threshold (F.softplus returns h above 20).
    return torch.logaddexp(h, torch.zeros_like(h))


def conv_net(p, x):
    h = x.reshape(-1, 1, CONV_SIDE, CONV_SIDE)
    h = softplus(F.conv2d(h, p["conv1.weight"], p["conv1.bias"], stride=1, padding=1))
    h = F.conv2d(h, p["conv2.weight"], p["conv2.bias"], stride=2, padding=1)
    h = h * torch.sigmoid(h)
    h = F.conv_transpose2d(h, p["tconv.weight"], p["tconv.bias"], stride=2, padding=1,
                           output_padding=1)
    return h.reshape(x.shape)


def conv_outputs(t):
    p = {k[5:]: v.clone().requires_grad_(True) for k, v in t.items() if k.startswith("conv.")}
    x = t["conv_x"].clone().requires_grad_(True)
    v = t["conv_v"]
    s = conv_net(p, x)
    u = (v * s).sum(1)  # v^T s
    gx = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
    loss = ((v * gx).sum(1) + 0.5 * u * u).mean()  # v^T (grad_x s) v + 1/2 (v^T s)^2
    names = list(p)
    grads = torch.autograd.grad(loss, [p[k] for k in names])
    out = {"conv_loss": loss.detach().reshape(1)}
    out.update({f"conv_grad.{k}": g for k, g in zip(names, grads)})
    return out


def compute(inputs):
    """float64 outputs from the float32 inputs (a dict of NumPy arrays)."""
    torch.set_num_threads(1)  # one summation order: the same bits every run
    t = {k: torch.from_numpy(np.asarray(a)).to(torch.float64) for k, a in inputs.items()}
    t["unet_levels"] = torch.from_numpy(np.asarray(inputs["unet_levels"])).long()
    out = unet_outputs(t)
    out.update(conv_outputs(t))
    return {k: np.ascontiguousarray(v.numpy(), dtype=np.float64) for k, v in out.items()}


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden", "images"),
                    help="output folder (default: tests/golden/images)")
    args = ap.parse_args(argv)
    inputs = make_inputs()
    arrays = dict(inputs)
    arrays.update(compute(inputs))
    os.makedirs(args.out, exist_ok=True)
    for name, a in sorted(arrays.items()):
        np.save(os.path.join(args.out, name + ".npy"), a, allow_pickle=False)
    meta = {
        "generator": "tools/make_golden_images.py",
        "seed": SEED,
        "batch": BATCH,
        "unet": UNET,
        "unet_sigma_range": [SIGMA_MAX, SIGMA_MIN],
        "conv_side": CONV_SIDE,
        "files": {k: [list(a.shape), str(a.dtype)] for k, a in sorted(arrays.items())},
    }
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(arrays)} arrays and meta.json to {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main(sys.argv[1:])
