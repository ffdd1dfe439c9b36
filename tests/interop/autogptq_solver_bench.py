#!/usr/bin/env python3
# Copyright 2026 the GPTQ toolkit authors. MIT license.
"""AutoGPTQ's `fasterquant` timed on given Hessians and weights, for bench/solver_bench.ts.

    PY=.tools/llama.cpp/venv/bin/python   # any Python with torch + safetensors
    $PY tests/interop/autogptq_solver_bench.py IN.safetensors OUT.json \\
        --layers q:4096x4096,gate:11008x4096,down:4096x11008 [--threads 2] [--repeat 1] \\
        [--autogptq-wheel FILE.whl]

IN holds `H<K>` (`[K, K]` f32) and `W<N>x<K>` (`[N, K]` f32) for each layer. For each layer and
repeat, AutoGPTQ's unmodified `GPTQ` / `Quantizer` (auto-gptq 0.7.1 wheel, loaded as in
autogptq_smollm2.py, not installed) quantize `W` with `H` (`nsamples = 1`, so the logged
"avg loss" is the loss sum): `Quantizer.configure(4, perchannel=True, sym=True, mse=False)`,
`fasterquant(blocksize=128, percdamp=0.01, group_size=128, actorder=False,
static_groups=False)`, torch on the CPU with `torch.set_num_threads(threads)`.

Also timed, on the same `H`: the three torch calls of `fasterquant`'s prepare (damping,
`cholesky`, `cholesky_inverse`, `cholesky(upper=True)`), so the bench can show prepare next to
prepare. OUT: `{"torch": ..., "threads": n, "layers": {"q": {"seconds": [...],
"prepare": [...], "loss": x}, ...}}`.
"""

import argparse
import json
import logging
import time

import torch
from safetensors.torch import load_file

from _autogptq import load_autogptq


class LossLog(logging.Handler):
    """Catches fasterquant's `avg loss: <x>` log line."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.loss = None

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("avg loss:"):
            self.loss = float(msg.split(":", 1)[1])


def prepare_only(H, percdamp=0.01):
    """fasterquant's prepare, the same torch calls on a copy of H."""
    H = H.clone()
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(H.shape[0])
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    return torch.linalg.cholesky(H, upper=True)


def fasterquant(GPTQ, H, W):
    """One timed `fasterquant` of `W` with `H` (setup not timed)."""
    layer = torch.nn.Linear(W.shape[1], W.shape[0], bias=False)
    layer.weight.data = W.clone()
    g = GPTQ(layer)
    g.H = H.clone()
    g.nsamples = 1
    g.quantizer.configure(4, perchannel=True, sym=True, mse=False)
    t0 = time.perf_counter()
    g.fasterquant(blocksize=128, percdamp=0.01, group_size=128, actorder=False, static_groups=False)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--layers", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--autogptq-wheel")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    GPTQ, Quantizer, wheel = load_autogptq(a.autogptq_wheel)
    log = LossLog()
    gl = logging.getLogger("_agq.gptq")
    gl.setLevel(logging.INFO)
    gl.addHandler(log)
    tensors = load_file(a.inp)
    # Warm-up (torch's first calls initialize lazily): a small layer, not timed.
    x = torch.randn(256, 256)
    fasterquant(GPTQ, 2 * x.t() @ x / 256 + 1e-3 * torch.eye(256), 0.02 * torch.randn(64, 256))
    result = {"torch": torch.__version__, "wheel": wheel, "threads": a.threads, "layers": {}}
    for spec in a.layers.split(","):
        name, shape = spec.split(":")
        N, K = (int(v) for v in shape.split("x"))
        H, W = tensors[f"H{K}"], tensors[f"W{N}x{K}"]
        r = result["layers"][name] = {"N": N, "K": K, "seconds": [], "prepare": []}
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            prepare_only(H)
            r["prepare"].append(time.perf_counter() - t0)
            log.loss = None
            r["seconds"].append(fasterquant(GPTQ, H, W))
            r["loss"] = log.loss
        print(f"{name} {N}x{K}: fasterquant {min(r['seconds']):.2f} s, prepare {min(r['prepare']):.2f} s",
              flush=True)
    with open(a.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
