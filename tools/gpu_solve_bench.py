# Copyright 2026 the GPTQ toolkit authors. MIT license.
"""Per-block GPTQ solve time of AutoGPTQ's fasterquant on torch CUDA (the anchor of
tools/gpu_solve_bench.ts), Llama-7B shapes, random SPD Hessians.

Uses AutoGPTQ's own GPTQ class when `auto_gptq` is importable; otherwise the same torch
operations in the same order (../shared/docs/gptq-reference.md §2 step 4: dead columns,
damping, cholesky → cholesky_inverse → cholesky(upper), blocks of 128 with lazy updates,
min-max quantizer with round-half-even), which is what AutoGPTQ's fasterquant runs.

    python3 tools/gpu_solve_bench.py --json out.json [--tokens 4096] [--repeat 2]

Prints one line per module and the block total; --json writes them.
"""
import argparse
import json
import math
import time

import torch

# Llama-7B: (module, N, K, input); modules sharing an input share a Hessian.
MODULES = [
    ("q_proj", 4096, 4096, "attn"),
    ("k_proj", 4096, 4096, "attn"),
    ("v_proj", 4096, 4096, "attn"),
    ("o_proj", 4096, 4096, "o"),
    ("gate_proj", 11008, 4096, "mlp"),
    ("up_proj", 11008, 4096, "mlp"),
    ("down_proj", 4096, 11008, "down"),
]


def find_params(x, bits, sym):
    maxq = 2**bits - 1
    zero_t = torch.zeros(x.shape[0], device=x.device)
    xmin = torch.minimum(x.min(1).values, zero_t)
    xmax = torch.maximum(x.max(1).values, zero_t)
    if sym:
        xmax = torch.maximum(torch.abs(xmin), xmax)
        neg = xmin < 0
        xmin[neg] = -xmax[neg]
    both = (xmin == 0) & (xmax == 0)
    xmin[both] = -1
    xmax[both] = 1
    scale = (xmax - xmin) / maxq
    zero = torch.full_like(scale, (maxq + 1) / 2) if sym else torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1), maxq


def quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def fasterquant_ops(W, H, bits=4, group_size=128, sym=True, percdamp=0.01, blocksize=128,
                    actorder=False):
    """AutoGPTQ's GPTQ.fasterquant as torch operations (W [N, K] f32, H [K, K] f32)."""
    W = W.clone().float()
    H = H.clone()
    scale, zero, maxq = find_params(W, bits, sym)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    if actorder:
        perm = torch.argsort(torch.diag(H), descending=True)
        W = W[:, perm]
        H = H[perm][:, perm]
    Losses = torch.zeros_like(W)
    Q = torch.zeros_like(W)
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(H.shape[0], device=H.device)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    K = W.shape[1]
    for i1 in range(0, K, blocksize):
        i2 = min(i1 + blocksize, K)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if group_size != -1 and (i1 + i) % group_size == 0:
                scale, zero, maxq = find_params(W[:, (i1 + i):(i1 + i + group_size)], bits, sym)
            q = quantize(w.unsqueeze(1), scale, zero, maxq).flatten()
            Q1[:, i] = q
            Losses1[:, i] = (w - q) ** 2 / d**2
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        Losses[:, i1:i2] = Losses1 / 2
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    torch.cuda.synchronize()
    return Q


def make_fasterquant():
    """AutoGPTQ's own fasterquant when installed, else the transcription above."""
    try:
        from auto_gptq.quantization.gptq import GPTQ  # type: ignore
        from auto_gptq.quantization.quantizer import Quantizer  # type: ignore  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return "torch ops (auto_gptq not installed: %s)" % type(e).__name__, fasterquant_ops

    def run(W, H, bits=4, group_size=128, sym=True, percdamp=0.01, blocksize=128,
            actorder=False):
        layer = torch.nn.Linear(W.shape[1], W.shape[0], bias=False, device=W.device)
        layer.weight.data = W.clone()
        g = GPTQ(layer)
        g.H = H.clone()
        g.nsamples = 1
        g.quantizer.configure(bits, perchannel=True, sym=sym, mse=False)
        g.fasterquant(blocksize=blocksize, percdamp=percdamp, group_size=group_size,
                      actorder=actorder)
        torch.cuda.synchronize()
        g.free()

    return "auto_gptq GPTQ.fasterquant", run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=4096, help="rows of the random X behind each H")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    name, fq = make_fasterquant()
    Hs = {}
    for _, _, K, inp in MODULES:
        if inp not in Hs:
            X = torch.randn(a.tokens, K, device=dev) / math.sqrt(K)
            Hs[inp] = 2 * X.t().matmul(X) / a.tokens
            del X
    rows = []
    for mod, N, K, inp in MODULES:
        W = torch.randn(N, K, device=dev) * 0.02
        fq(W, Hs[inp])  # warm-up (kernels, cuSOLVER handles)
        best = math.inf
        for _ in range(a.repeat):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fq(W, Hs[inp])
            best = min(best, time.perf_counter() - t0)
        rows.append({"module": mod, "N": N, "K": K, "ms": best * 1e3})
        print("autogptq %-10s %5d×%-5d %9.1f ms" % (mod, N, K, best * 1e3), flush=True)
        del W
    total = sum(r["ms"] for r in rows)
    print("autogptq block total %.1f ms (%s, %s)" % (total, name, torch.cuda.get_device_name()))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"impl": name, "device": torch.cuda.get_device_name(), "tokens": a.tokens,
                       "modules": rows, "block_ms": total}, f, indent=2)


if __name__ == "__main__":
    main()
