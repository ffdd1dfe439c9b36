# Copyright 2026 the GPTQ toolkit authors. MIT license.
"""Loads AutoGPTQ 0.7.1's unmodified `gptq.py` / `quantizer.py` from its wheel without installing it.

Shared by autogptq_smollm2.py and autogptq_solver_bench.py.
"""

import importlib.util
import os
import subprocess
import sys
import types
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "..", "..", ".cache", "autogptq")


def load_autogptq(wheel):
    """Imports gptq.py/quantizer.py of the AutoGPTQ wheel as package `_agq`."""
    if wheel is None:
        os.makedirs(CACHE, exist_ok=True)
        found = [f for f in os.listdir(CACHE) if f.startswith("auto_gptq-0.7.1") and f.endswith(".whl")]
        if not found:
            subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                                   ":all:", "auto-gptq==0.7.1", "-d", CACHE])
            found = [f for f in os.listdir(CACHE) if f.startswith("auto_gptq-0.7.1") and f.endswith(".whl")]
        wheel = os.path.join(CACHE, found[0])
    src = os.path.join(CACHE, "src")
    with zipfile.ZipFile(wheel) as z:
        for name in ("gptq.py", "quantizer.py"):
            z.extract(f"auto_gptq/quantization/{name}", src)
    pkg_dir = os.path.join(src, "auto_gptq", "quantization")
    pkg = types.ModuleType("_agq")
    pkg.__path__ = [pkg_dir]
    sys.modules["_agq"] = pkg
    mods = {}
    for name in ("quantizer", "gptq"):
        spec = importlib.util.spec_from_file_location(f"_agq.{name}", os.path.join(pkg_dir, f"{name}.py"))
        m = importlib.util.module_from_spec(spec)
        sys.modules[f"_agq.{name}"] = m
        spec.loader.exec_module(m)
        mods[name] = m
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *a, **k: None
    return mods["gptq"].GPTQ, mods["quantizer"].Quantizer, os.path.basename(wheel)
