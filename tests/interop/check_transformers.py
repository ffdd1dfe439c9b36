# Copyright 2026 the GPTQ toolkit authors. MIT license.
"""Checks that a GPTQ checkpoint written by `cli.ts quantize` loads in the
Python ecosystem and computes the same logits as our Deno runtime.

Two independent Python-side paths (both run by default):

* ``transformers``: ``AutoModelForCausalLM.from_pretrained(dir, device_map="cpu")``,
  i.e. transformers' own GPTQ integration (optimum + gptqmodel kernels); this
  is what a user of the checkpoint gets.
* ``reference``: our safetensors are read with ``safetensors`` + ``torch`` and
  dequantized exactly as AutoGPTQ's ``qlinear_cuda_old`` torch path does
  (unpack with shifts, ``zeros + 1`` for the v1 format, ``W = scale * (q - z)``
  over ``g_idx``); the weights go into a plain fp32 transformers model.

Our logits come from ``deno run -A tests/interop/ours_logits.ts`` (or a file
given with ``--ours``). Exit status 1 when a difference exceeds ``--tol``.

Usage::

    python tests/interop/check_transformers.py QUANT_DIR GOLDEN.safetensors \
        [--mode both|transformers|reference] [--backend auto|torch] [--dtype auto|float32]
        [--tol 1e-2] [--json]

``GOLDEN.safetensors`` needs ``input_ids`` [T]; when it also holds ``logits``
(the unquantized model's, as ``golden/models/*/golden.safetensors`` do) the
quantization error is printed for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def deno_exe() -> str:
    for cand in (os.environ.get("DENO"), shutil.which("deno"),
                 str(REPO / ".tools/node_modules/.bin/deno")):
        if cand and Path(cand).exists():
            return cand
    sys.exit("deno not found: set DENO=/path/to/deno")


def ours_logits(qdir: Path, golden: Path) -> torch.Tensor:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ours.safetensors"
        subprocess.run([deno_exe(), "run", "-A", str(HERE / "ours_logits.ts"),
                        str(qdir), str(golden), str(out)], check=True, cwd=REPO)
        return load_file(str(out))["logits"].float()


# --- AutoGPTQ qlinear_cuda_old torch-path dequantization -----------------

def unpack_rows(q: torch.Tensor, bits: int) -> torch.Tensor:
    """qweight [K*bits/32, N] int32 -> [K, N] codes (little-endian nibbles)."""
    per = 32 // bits
    wf = torch.arange(0, 32, bits, dtype=torch.int32)
    w = torch.bitwise_right_shift(q.unsqueeze(1).expand(-1, per, -1), wf.view(1, -1, 1))
    w = torch.bitwise_and(w, (1 << bits) - 1)
    return w.reshape(-1, q.shape[1])


def unpack_cols(q: torch.Tensor, bits: int) -> torch.Tensor:
    """qzeros [G, N*bits/32] int32 -> [G, N] codes."""
    per = 32 // bits
    wf = torch.arange(0, 32, bits, dtype=torch.int32)
    z = torch.bitwise_right_shift(q.unsqueeze(2).expand(-1, -1, per), wf.view(1, 1, -1))
    z = torch.bitwise_and(z, (1 << bits) - 1)
    return z.reshape(q.shape[0], -1)


def dequantize(sd: dict, prefix: str, bits: int, fmt: str) -> torch.Tensor:
    """Returns W [K, N] float32 (the transpose of nn.Linear's weight)."""
    if bits not in (2, 4, 8):
        raise SystemExit(f"{prefix}: the reference path handles 2/4/8 bits, not {bits}")
    qweight = sd[prefix + ".qweight"]
    qzeros = sd[prefix + ".qzeros"]
    scales = sd[prefix + ".scales"].float()
    g_idx = sd[prefix + ".g_idx"].long()
    w = unpack_rows(qweight, bits).float()
    z = unpack_cols(qzeros, bits).float()
    if fmt == "gptq":  # v1 stores zero - 1 (AutoGPTQ adds 1 back, overflow included)
        z = z + 1
    return scales[g_idx] * (w - z[g_idx])


def reference_model(qdir: Path):
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    cfg = AutoConfig.from_pretrained(qdir)
    qc = getattr(cfg, "quantization_config", None)
    qc = qc if isinstance(qc, dict) else qc.to_dict()
    bits, fmt = int(qc["bits"]), qc.get("checkpoint_format", "gptq")
    del cfg.quantization_config
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    sd = {}
    for f in sorted(qdir.glob("model*.safetensors")):
        sd.update(load_file(str(f)))
    prefixes = {k[: -len(".qweight")] for k in sd if k.endswith(".qweight")}
    new_sd = {}
    modules = dict(model.named_modules())
    for k, v in sd.items():
        p, _, suffix = k.rpartition(".")
        if p in prefixes:
            if suffix == "qweight":
                w = dequantize(sd, p, bits, fmt)  # [K, N]
                new_sd[p + ".weight"] = w if isinstance(modules[p], Conv1D) else w.t().contiguous()
            elif suffix == "bias":
                new_sd[k] = v.float()
            continue
        new_sd[k] = v.float()
    # transformers 5 names GPT-NeoX's head lm_head; older files (and ours, copied) say embed_out.
    if "embed_out.weight" in new_sd and "embed_out.weight" not in model.state_dict():
        new_sd["lm_head.weight"] = new_sd.pop("embed_out.weight")
    missing, unexpected = model.load_state_dict(new_sd, strict=False)
    # Tied heads are legitimately absent from the file.
    missing = [m for m in missing if not (m == "lm_head.weight" and cfg.tie_word_embeddings)]
    if missing or unexpected:
        raise SystemExit(f"reference load: missing {missing}, unexpected {unexpected}")
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return model, bits, fmt, len(prefixes)


def patch_gpt2_init() -> None:
    """transformers 5.23's GPT-2 `_init_weights` re-initializes `c_proj.weight`
    of every attention/MLP module, which a GPTQ module lacks (AttributeError for
    any GPTQ GPT-2 checkpoint, ours or AutoGPTQ's). Loaded weights overwrite
    the init anyway, so skip it for quantized modules."""
    from transformers.models.gpt2 import modeling_gpt2 as g

    orig = g.GPT2PreTrainedModel._init_weights
    if getattr(orig, "_interop_patched", False):
        return

    def init(self, module):
        c_proj = getattr(module, "c_proj", None)
        if c_proj is not None and not hasattr(c_proj, "weight"):
            return
        return orig(self, module)

    init._interop_patched = True
    g.GPT2PreTrainedModel._init_weights = init


def transformers_model(qdir: Path, backend: str, dtype: str):
    from transformers import AutoModelForCausalLM, GPTQConfig

    patch_gpt2_init()
    kw = {} if dtype == "auto" else {"dtype": getattr(torch, dtype)}
    if backend != "auto":
        qc = json.loads((qdir / "config.json").read_text())["quantization_config"]
        kw["quantization_config"] = GPTQConfig(**{**qc, "backend": backend})
    model = AutoModelForCausalLM.from_pretrained(qdir, device_map="cpu", **kw).eval()
    kernels = sorted({type(m).__name__ for m in model.modules() if hasattr(m, "qweight")})
    return model, kernels


def run(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids.long().view(1, -1)).logits[0].float()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("qdir", type=Path)
    ap.add_argument("golden", type=Path)
    ap.add_argument("--mode", choices=["both", "transformers", "reference"], default="both")
    ap.add_argument("--backend", default="auto", help="GPTQConfig backend (auto, torch, ...)")
    ap.add_argument("--dtype", default="auto",
                    help="transformers dtype: auto (the checkpoint's), float32, bfloat16, ...")
    ap.add_argument("--ours", type=Path, help="our logits (safetensors 'logits'); default: run deno")
    ap.add_argument("--tol", type=float, default=1e-2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    g = load_file(str(a.golden))
    ids = g["input_ids"]
    ours = load_file(str(a.ours))["logits"].float() if a.ours else ours_logits(a.qdir, a.golden)
    res: dict = {"model": str(a.qdir), "tokens": int(ids.numel())}
    if "logits" in g:
        res["quant_error_vs_fp_logits"] = float((ours - g["logits"].float()).abs().max())
    ok = True
    if a.mode in ("both", "reference"):
        m, bits, fmt, n = reference_model(a.qdir)
        ref = run(m, ids)
        d = float((ref - ours).abs().max())
        res["reference"] = {"bits": bits, "format": fmt, "quantized_modules": n,
                            "max_abs_diff": d, "argmax_agree": float(
                                (ref.argmax(-1) == ours.argmax(-1)).float().mean())}
        ok &= d <= a.tol
    if a.mode in ("both", "transformers"):
        m, kernels = transformers_model(a.qdir, a.backend, a.dtype)
        tl = run(m, ids)
        d = float((tl - ours).abs().max())
        res["transformers"] = {"dtype": str(next(m.parameters()).dtype), "kernels": kernels,
                               "max_abs_diff": d, "argmax_agree": float(
                                   (tl.argmax(-1) == ours.argmax(-1)).float().mean())}
        ok &= d <= a.tol
    res["ok"] = bool(ok)
    print(json.dumps(res, indent=None if a.json else 2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
