#!/usr/bin/env python3
# Copyright 2026 the GPTQ toolkit authors. MIT license.
"""AutoGPTQ's own GPTQ on SmolLM2-135M, for bench/smollm2_quality_bench.ts.

Runs AutoGPTQ's solver on the tokens the bench wrote and writes the WikiText-2
perplexities the bench prints next to ours:

    PY=.tools/llama.cpp/venv/bin/python   # any Python with torch + transformers + safetensors
    $PY tests/interop/autogptq_smollm2.py .cache/smollm2/fp32 \\
        .cache/smollm2/quality/tokens.safetensors .cache/smollm2/quality/autogptq.json \\
        [--configs 4b-g128,3b-g128,4b-g128-act] [--threads 2] [--autogptq-wheel FILE.whl]

What runs (no re-implementation of the algorithm):
- `GPTQ` and `Quantizer` are AutoGPTQ's unmodified `auto_gptq/quantization/gptq.py` and
  `quantizer.py`, imported from the auto-gptq 0.7.1 wheel of PyPI (downloaded with
  `pip download --no-deps --only-binary :all: auto-gptq==0.7.1` unless given). The
  package itself is not installed: its `__init__` needs CUDA extensions, peft and an older
  transformers. On a CPU-only torch, `torch.cuda.synchronize` (called once at the end of
  `fasterquant` for logging) is replaced by a no-op.
- The driver below follows `BaseGPTQForCausalLM.quantize` of the same wheel (modeling/_base.py)
  for Llama: capture the inputs of layer 0 for each sample (batch 1), then per layer and per
  true-sequential group (k,v,q → o → up,gate → down) forward-hook `add_batch` over all samples,
  `fasterquant(blocksize=128, percdamp=0.01, group_size, actorder, static_groups=False)` with
  `Quantizer.configure(bits, perchannel=True, sym=True, mse=False)`, and finally run the
  quantized layer over all samples to get the next layer's inputs.
- The evaluated weight is what AutoGPTQ's `pack` + `qlinear` forward computes: integer codes
  `round((W + zero·scale) / scale)` with the fp32 scales (as `QuantLinear.pack` does), then
  `scale_fp16 · (q − zero)`.
- RTN: the same `Quantizer` per group of the original weight (`find_params`, `quantize`), packed.
- Perplexity: the fp32 transformers forward of each 512-token window, mean shifted NLL,
  `exp` of the mean over windows (the GPTQ paper's `opt_eval`, as our `eval`).
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from _autogptq import load_autogptq

CONFIGS = {
    "4b-g128": dict(bits=4, group_size=128, desc_act=False),
    "3b-g128": dict(bits=3, group_size=128, desc_act=False),
    "4b-g128-act": dict(bits=4, group_size=128, desc_act=True),
}
SEQUENTIAL = [
    ["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"],
    ["self_attn.o_proj"],
    ["mlp.up_proj", "mlp.gate_proj"],
    ["mlp.down_proj"],
]
# AutoGPTQ feeds later groups and layers the fp32 fake-quantized weight (False); True feeds the
# packed weight (fp16 scales), as our quantizeModel does (--feedback packed).
FEEDBACK_PACKED = False
def load_model(model_dir):
    try:
        m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    except TypeError:
        m = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    m.eval()
    m.config.use_cache = False
    return m


@torch.no_grad()
def perplexity(model, eval_ids):
    total = 0.0
    for w in range(eval_ids.shape[0]):
        ids = eval_ids[w : w + 1]
        logits = model(ids, use_cache=False).logits[0].float()
        total += torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:]).item()
    return math.exp(total / eval_ids.shape[0])


def pack_dequant(W, scale, zero, g_idx, maxq):
    """The weight AutoGPTQ's packed checkpoint computes with (fp16 scales)."""
    s = scale[:, g_idx.long()]
    z = zero[:, g_idx.long()]
    q = torch.clamp(torch.round((W + z * s) / s), 0, maxq)  # QuantLinear.pack
    return scale.half().float()[:, g_idx.long()] * (q - z)


@torch.no_grad()
def quantize_gptq(model, calib_ids, cfg, GPTQ):
    layers = model.model.layers
    inputs, kwargs_list = [], []

    def catch(_, args, kwargs):
        inputs.append(args[0] if args else kwargs["hidden_states"])
        kw = {k: v for k, v in kwargs.items() if k != "hidden_states"}
        kwargs_list.append(kw)
        raise ValueError

    h = layers[0].register_forward_pre_hook(catch, with_kwargs=True)
    for j in range(calib_ids.shape[0]):
        try:
            model(calib_ids[j : j + 1], use_cache=False)
        except ValueError:
            pass
    h.remove()
    packed = {}
    for i, layer in enumerate(layers):
        full = {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
        for names in SEQUENTIAL:
            subset = {n: full[n] for n in names}
            gptq = {}
            for n in subset:
                gptq[n] = GPTQ(subset[n])
                gptq[n].quantizer.configure(cfg["bits"], perchannel=True, sym=True, mse=False)

            def add_batch(n):
                return lambda _, inp, out: gptq[n].add_batch(inp[0].data, out.data)

            handles = [subset[n].register_forward_hook(add_batch(n)) for n in subset]
            for j in range(len(inputs)):
                layer(inputs[j], **kwargs_list[j])
            for hd in handles:
                hd.remove()
            for n in subset:
                scale, zero, g_idx = gptq[n].fasterquant(
                    percdamp=0.01, group_size=cfg["group_size"], actorder=cfg["desc_act"], static_groups=False
                )
                packed[(i, n)] = (scale, zero, g_idx)
                gptq[n].free()
                if FEEDBACK_PACKED:  # later groups and layers see the packed (fp16-scale) weight
                    lin = subset[n]
                    lin.weight.data = pack_dequant(lin.weight.data.float(), scale, zero, g_idx, 2 ** cfg["bits"] - 1)
        outs = []
        for j in range(len(inputs)):
            o = layer(inputs[j], **kwargs_list[j])
            outs.append(o[0] if isinstance(o, tuple) else o)
        inputs = outs
        print(f"  layer {i + 1}/{len(layers)}", file=sys.stderr, flush=True)
    maxq = 2 ** cfg["bits"] - 1
    for (i, n), (scale, zero, g_idx) in packed.items():
        lin = dict(layers[i].named_modules())[n]
        lin.weight.data = pack_dequant(lin.weight.data.float(), scale, zero, g_idx, maxq)


@torch.no_grad()
def quantize_rtn(model, cfg, Quantizer):
    g = cfg["group_size"]
    for layer in model.model.layers:
        for n, lin in layer.named_modules():
            if not isinstance(lin, torch.nn.Linear):
                continue
            W = lin.weight.data.float()
            Q = torch.empty_like(W)
            scales, zeros = [], []
            for c in range(0, W.shape[1], g):
                q = Quantizer()
                q.configure(cfg["bits"], perchannel=True, sym=True, mse=False)
                q.find_params(W[:, c : c + g], weight=True)
                Q[:, c : c + g] = q.quantize(W[:, c : c + g])  # AutoGPTQ's fake quantization
                scales.append(q.scale)
                zeros.append(q.zero)
            g_idx = torch.arange(W.shape[1], dtype=torch.int32) // g
            lin.weight.data = pack_dequant(Q, torch.cat(scales, 1), torch.cat(zeros, 1), g_idx, 2 ** cfg["bits"] - 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("tokens")
    ap.add_argument("out")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--autogptq-wheel")
    ap.add_argument("--feedback", choices=["fake-quant", "packed"], default="fake-quant",
                    help="weights later groups see: AutoGPTQ's fp32 fake-quant (default) or the packed "
                         "fp16-scale weight as our quantizeModel uses (results under gptq_packed)")
    a = ap.parse_args()
    global FEEDBACK_PACKED
    FEEDBACK_PACKED = a.feedback == "packed"
    key = "gptq_packed" if FEEDBACK_PACKED else "gptq"
    torch.set_num_threads(a.threads)
    GPTQ, Quantizer, wheel = load_autogptq(a.autogptq_wheel)
    with safe_open(a.tokens, "pt") as f:
        token_key = f.metadata()["token_key"]
        eval_ids = f.get_tensor("eval_ids").long()
        calib_ids = f.get_tensor("calib_ids").long()
    res = {}
    if os.path.exists(a.out):
        with open(a.out) as fh:
            res = json.load(fh)
    if res.get("token_key") != token_key or res.get("windows") != eval_ids.shape[0]:
        res = {"token_key": token_key, "windows": eval_ids.shape[0], "nsamples": calib_ids.shape[0], "results": {}}
    res["what"] = (
        f"{wheel}: unmodified GPTQ/Quantizer (fasterquant, blocksize 128), driver as "
        f"BaseGPTQForCausalLM.quantize; torch {torch.__version__} CPU, {a.threads} threads, fp32"
    )

    def save():
        tmp = a.out + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(res, fh, indent=2)
        os.replace(tmp, a.out)

    if "fp" not in res:
        t = time.time()
        res["fp"] = perplexity(load_model(a.model_dir), eval_ids)
        print(f"fp: {res['fp']:.4f} ({time.time() - t:.0f} s)", flush=True)
        save()
    for c in a.configs.split(","):
        r = res["results"].setdefault(c, {})
        if "rtn" not in r:
            m = load_model(a.model_dir)
            quantize_rtn(m, CONFIGS[c], Quantizer)
            r["rtn"] = perplexity(m, eval_ids)
            print(f"{c} rtn: {r['rtn']:.4f}", flush=True)
            save()
        if key not in r:
            m = load_model(a.model_dir)
            t = time.time()
            quantize_gptq(m, calib_ids, CONFIGS[c], GPTQ)
            r["seconds" if key == "gptq" else "seconds_packed"] = time.time() - t
            r[key] = perplexity(m, eval_ids)
            print(f"{c} {key}: {r[key]:.4f} (quantized in {time.time() - t:.0f} s)", flush=True)
            save()
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
