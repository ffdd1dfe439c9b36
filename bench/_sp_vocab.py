#!/usr/bin/env python3
# Copyright 2026 the GPTQ toolkit authors. MIT license.
"""Writes a small SentencePiece `tokenizer.model` into a model folder, so that llama.cpp's
convert_hf_to_gguf.py accepts the random-weight Llama-7B-shaped models of the benchmarks
(it pads the vocabulary to the config's vocab_size with unused [PAD] tokens; llama-bench
feeds token ids, so the vocabulary's content does not matter).

    python bench/_sp_vocab.py MODEL_DIR TEXT_FILE
"""

import os
import sys

import sentencepiece as spm

model_dir, text = sys.argv[1], sys.argv[2]
prefix = os.path.join(model_dir, "tokenizer")
spm.SentencePieceTrainer.train(
    input=text, model_prefix=prefix, vocab_size=256, model_type="bpe", character_coverage=1.0,
    bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2,
)
os.remove(prefix + ".vocab")
