#!/usr/bin/python3
"""PyTorch twin of `scorekit train --model unet --objective vesde`: the same
module (tools/load_model.py's unet_class), objective, optimiser, EMA and
data, saving checkpoints as scorekit model files, so that scorekit's own
sampler, eval and likelihood score both trainers' models.

  torch_unet_train.py --template FILE --at N1,N2,... --out DIR
                      [--init template|torch] [--seed S] [--threads K]
                      [--lr LR] [--batch B] [--ema R] [--data FILE]
  torch_unet_train.py --check FILE (--x X.npy | --twin T.npy) --sigma S --expect S.npy
                      [--ema-weights]

Training: the vesde loss, per row sigma = sigma_min (sigma_max/sigma_min)^u,
u ~ U[0, 1), x~ = x + sigma z, 1/B sum_b 1/2 |sigma_b s(x~_b, sigma_b) + z_b|^2,
with sigma_max and sigma_min the ends of the template's ladder; Adam (betas
0.9, 0.999, eps 1e-8: scorekit's constants, src/nn/adam.c) at --lr; after
each step the EMA r*ema + (1-r)*theta, starting at the initial weights; the
data are Fashion-MNIST's 60,000 training images / 255, read in epochs of a
random permutation (as scorekit draws its batches; the draws are PyTorch's,
not scorekit's).

--template is a scorekit model file of the same configuration (`scorekit
train --model unet --objective vesde --steps 1 ...`). Its metadata is copied
into every checkpoint with `steps` set, and its tensors give the names, the
order and, with --init template (the default), the initial weights: a
1-step run's EMA is r theta_0 + (1 - r) theta_1, so theta_0 = (ema - (1 - r)
theta_1) / r, to float32 rounding. --init torch uses PyTorch's own
initialisation (seeded by --seed) instead.

Writes DIR/steps-N.safetensors at each step count N of --at (raw weights
and `ema.` ones), DIR/log.csv (step, loss, seconds) and, for --check,
DIR/check_x.npy with the twin's own scores of it at sigma 1 under the raw and
EMA weights of the last checkpoint (check_raw.npy, check_ema.npy).

--check compares a file's score, evaluated by this module loaded from it
(tools/load_model.py), with scorekit's (`scorekit score` output): exit 1
unless they agree to 1e-5 relative. `--check FILE --expect S.npy --twin T.npy`
compares scorekit's score with a saved twin forward instead.
"""
import argparse
import gzip
import json
import os
import re
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from load_model import read_safetensors, torch_unet  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
TOL = 1e-5


def read_images(path):
    """An idx3-ubyte.gz file's images as (n, 784) float32 in [0, 1]."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, h, w = struct.unpack(">IIII", raw[:16])
    if magic != 2051:
        raise SystemExit(f"{path}: not an idx3-ubyte file (magic {magic})")
    x = np.frombuffer(raw, dtype=np.uint8, offset=16, count=n * h * w)
    return (x.reshape(n, h * w).astype(np.float32) / 255.0).astype(np.float32)


def template_layout(path):
    """(names in file order, metadata string, config dict) of a scorekit model file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__")["scorekit"]
    names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    return names, meta, json.loads(meta)


def write_model(path, names, meta, tensors):
    """A safetensors file: the tensors in `names` order, float32, with the
    metadata string under `scorekit`; written to a temporary name, then renamed."""
    header, off, blobs = {"__metadata__": {"scorekit": meta}}, 0, []
    for k in names:
        a = np.ascontiguousarray(tensors[k], dtype="<f4")
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the data start 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def with_steps(meta, steps):
    """The template's metadata JSON with `steps` replaced, the rest byte for byte."""
    out, n = re.subn(r'"steps":\s*\d+', f'"steps":{steps}', meta, count=1)
    if n != 1:
        raise SystemExit("the template's metadata has no steps field")
    return out


def check(a):
    cfg = template_layout(a.check)[2]
    tensors, _ = read_safetensors(a.check)
    pre = "ema." if a.ema_weights else ""
    expect = np.load(a.expect).astype(np.float64)
    if a.twin:
        s = np.load(a.twin).astype(np.float64)
        what = "saved twin forward"
    else:
        state = {k: tensors[pre + k] for k in tensors if not k.startswith("ema.")}
        net = torch_unet(cfg, state)
        x = torch.from_numpy(np.load(a.x).astype(np.float32))
        with torch.no_grad():
            s = net(x, torch.tensor(a.sigma)).double().numpy()
        what = "twin loaded from the file"
    rel = np.max(np.abs(s - expect)) / max(np.max(np.abs(expect)), 1e-30)
    print(f"{a.check} ({'ema' if a.ema_weights else 'raw'}): max |{what} - scorekit score| / "
          f"max |scorekit| = {rel:.3g}")
    return 0 if rel <= TOL else 1


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--template")
    ap.add_argument("--at", help="comma-separated step counts to save")
    ap.add_argument("--out")
    ap.add_argument("--init", choices=("template", "torch"), default="template")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ema", type=float, default=0.999, help="the EMA rate")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--check")
    ap.add_argument("--x")
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--expect")
    ap.add_argument("--twin")
    ap.add_argument("--ema-weights", action="store_true", help="--check the EMA weights")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.check:
        if not a.expect or not (a.x or a.twin):
            ap.error("--check needs --expect and --x or --twin")
        return check(a)
    if not (a.template and a.at and a.out):
        ap.error("--template, --at and --out are needed (or --check)")
    at = sorted({int(s) for s in a.at.split(",")})
    if at[0] < 1:
        ap.error("--at: step counts must be positive")
    names, meta, cfg = template_layout(a.template)
    if cfg["kind"] != "unet" or cfg["objective"] != "vesde" or cfg.get("classes", 0):
        raise SystemExit(f"{a.template}: not an unconditional vesde U-Net")
    smax, smin = float(cfg["sigmas"][0]), float(cfg["sigmas"][-1])
    r = a.ema
    tensors, _ = read_safetensors(a.template)
    plain = [k for k in names if not k.startswith("ema.")]

    torch.manual_seed(a.seed)
    net = torch_unet(cfg)
    if a.init == "template":
        if cfg["steps"] != 1:
            raise SystemExit(f"--init template: {a.template} is at step {cfg['steps']}, not 1")
        theta0 = {k: ((tensors["ema." + k].astype(np.float64) -
                       (1 - r) * tensors[k].astype(np.float64)) / r).astype(np.float32)
                  for k in plain}
        net.load_state_dict({k: torch.from_numpy(v) for k, v in theta0.items()})
    if sorted(net.state_dict()) != sorted(plain):
        raise SystemExit(f"{a.template}: its tensors are not the twin's state_dict")
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    live = dict(net.state_dict())

    x_all = torch.from_numpy(read_images(a.data))
    n = len(x_all)
    os.makedirs(a.out, exist_ok=True)
    g = torch.Generator().manual_seed(a.seed)
    perm, cursor = torch.randperm(n, generator=g), 0
    log = open(os.path.join(a.out, "log.csv"), "w")
    log.write("step,loss,seconds\n")
    print(f"twin: sigma_max {smax:g}, sigma_min {smin:g}, lr {a.lr:g}, batch {a.batch}, "
          f"ema {r:g}, init {a.init}, {torch.get_num_threads()} thread(s), {n} images, "
          f"steps {at}", flush=True)
    t0 = time.perf_counter()
    for step in range(1, at[-1] + 1):
        idx, got = [], 0
        while got < a.batch:  # a batch may straddle two epochs
            if cursor == n:
                perm, cursor = torch.randperm(n, generator=g), 0
            take = min(a.batch - got, n - cursor)
            idx.append(perm[cursor:cursor + take])
            cursor, got = cursor + take, got + take
        x = x_all[torch.cat(idx)]
        u = torch.rand(a.batch, 1, generator=g, dtype=torch.float64)
        sigma = (smin * (smax / smin) ** u).float()
        z = torch.randn(x.shape, generator=g)
        opt.zero_grad(set_to_none=True)
        s = net(x + sigma * z, sigma.reshape(-1))
        loss = (0.5 * ((sigma * s + z) ** 2).sum(1)).mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for k, e in ema.items():
                e.mul_(r).add_(live[k], alpha=1 - r)
        log.write(f"{step},{loss.item():.6g},{time.perf_counter() - t0:.3f}\n")
        if step % 500 == 0:
            print(f"twin: step {step} loss {loss.item():.4g} "
                  f"{step / (time.perf_counter() - t0):.2f} steps/s", flush=True)
        if step in at:
            out = {k: live[k].detach().numpy() for k in plain}
            out.update({"ema." + k: ema[k].numpy() for k in plain})
            path = os.path.join(a.out, f"steps-{step}.safetensors")
            write_model(path, names, with_steps(meta, step), out)
            log.flush()
            print(f"twin: wrote {path} ({time.perf_counter() - t0:.1f} s)", flush=True)
    log.close()
    # The twin's own forward of fixed inputs at the last checkpoint, for the
    # export check against `scorekit score` of the file it wrote.
    gx = torch.Generator().manual_seed(1)
    xc = x_all[torch.randperm(n, generator=gx)[:16]] + torch.randn(16, 784, generator=gx)
    np.save(os.path.join(a.out, "check_x.npy"), xc.numpy())
    with torch.no_grad():
        np.save(os.path.join(a.out, "check_raw.npy"), net(xc, torch.tensor(1.0)).numpy())
        net.load_state_dict(ema)
        np.save(os.path.join(a.out, "check_ema.npy"), net(xc, torch.tensor(1.0)).numpy())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
