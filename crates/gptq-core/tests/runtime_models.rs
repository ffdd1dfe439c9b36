// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! End-to-end check of the runtime kernels against transformers: tiny Llama
//! (f16, GQA, SwiGLU), GPT-2 (f32, Conv1D, gelu_new), GPT-NeoX (bf16,
//! partial rotary, parallel residual, erf GELU) and OPT (f16, ReLU, learned
//! positions) forward passes composed from `gptq_core::runtime` must give
//! the logits that transformers' fp32 forward produced
//! (`shared/data/golden/models/*/golden.safetensors`). Each model runs twice:
//! prefill (all 96 tokens in one call: GEMM path, causal attention) and
//! token-by-token decode (GEMV path, KV cache with growing `past`).

mod common;

use common::{data_dir, read_safetensors, St};
use gptq_core::dtype::{bf16_to_f32, f16_to_f32};
use gptq_core::runtime::activation::{add, gelu_erf, gelu_tanh, relu, silu_mul};
use gptq_core::runtime::attention::attention;
use gptq_core::runtime::norm::{layer_norm, rms_norm};
use gptq_core::runtime::ops::{copy_2d, embed};
use gptq_core::runtime::rope::rope;
use gptq_core::runtime::{matmul, transpose, Weights};

/// A weight kept in its checkpoint dtype.
enum W {
    F32(Vec<f32>),
    F16(Vec<u16>),
    Bf16(Vec<u16>),
}

impl W {
    fn w(&self) -> Weights<'_> {
        match self {
            W::F32(v) => Weights::F32(v),
            W::F16(v) => Weights::F16(v),
            W::Bf16(v) => Weights::Bf16(v),
        }
    }
}

struct Model {
    st: St,
    cfg: serde_json::Value,
}

impl Model {
    fn load(name: &str) -> (Model, Vec<u32>, Vec<f32>) {
        let dir = data_dir().join("golden/models").join(name);
        let st = read_safetensors(&dir.join("model.safetensors"));
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let g = read_safetensors(&dir.join("golden.safetensors"));
        let ids = g.tensors["input_ids"]
            .i32()
            .iter()
            .map(|&v| v as u32)
            .collect();
        let logits = g.tensors["logits"].f32();
        (Model { st, cfg }, ids, logits)
    }
    fn c(&self, key: &str) -> usize {
        self.cfg[key]
            .as_u64()
            .unwrap_or_else(|| panic!("config {key}")) as usize
    }
    fn w(&self, name: &str) -> W {
        let t = self
            .st
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("missing tensor {name}"));
        let u16s = || {
            t.data
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect()
        };
        match t.dtype.as_str() {
            "F32" => W::F32(t.f32()),
            "F16" => W::F16(u16s()),
            "BF16" => W::Bf16(u16s()),
            d => panic!("{name}: dtype {d}"),
        }
    }
    /// A small tensor (norm weight, bias) widened to f32.
    fn f(&self, name: &str) -> Vec<f32> {
        match self.w(name) {
            W::F32(v) => v,
            W::F16(v) => v.iter().map(|&h| f16_to_f32(h)).collect(),
            W::Bf16(v) => v.iter().map(|&h| bf16_to_f32(h)).collect(),
        }
    }
    /// GPT-2 Conv1D weight `[k, n]` transposed to `[n, k]`.
    fn conv1d(&self, name: &str) -> W {
        let t = &self.st.tensors[name];
        let (k, n) = (t.shape[0], t.shape[1]);
        match self.w(name) {
            W::F32(v) => W::F32(transpose(&v, k, n, 0, n).unwrap()),
            _ => panic!("gpt2 weights are f32 here"),
        }
    }
}

/// `y [m, n] = x [m, k] · wᵀ + b`.
fn lin(x: &[f32], m: usize, k: usize, w: &W, b: Option<&[f32]>) -> Vec<f32> {
    let n = w.w().len() / k;
    let mut y = vec![0f32; m * n];
    matmul(x, m, k, w.w(), b, 0, n, &mut y, 0, n).unwrap();
    y
}

struct Cache {
    k: Vec<f32>,
    v: Vec<f32>,
}

/// Stores `k, v [t, hkv*d]` at `past` and runs causal attention for `q`.
#[allow(clippy::too_many_arguments)]
fn attend(
    c: &mut Cache,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    past: usize,
) -> Vec<f32> {
    let w = hkv * d;
    copy_2d(k, 0, w, &mut c.k, past * w, w, t, w).unwrap();
    copy_2d(v, 0, w, &mut c.v, past * w, w, t, w).unwrap();
    let mut out = vec![0f32; t * hq * d];
    attention(
        q,
        t,
        hq,
        d,
        &c.k,
        &c.v,
        hkv,
        past,
        1.0 / (d as f32).sqrt(),
        &mut out,
    )
    .unwrap();
    out
}

fn inv_freq(theta: f64, rotary_dim: usize) -> Vec<f32> {
    // HF: 1 / base^(arange(0, dim, 2).float() / dim), computed in f32.
    (0..rotary_dim / 2)
        .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / rotary_dim as f32))
        .collect()
}

/// One forward step over tokens `ids` at positions `past..`; returns logits.
type Step<'a> = Box<dyn FnMut(&[u32], usize) -> Vec<f32> + 'a>;

fn llama(m: &Model, s_max: usize) -> Step<'_> {
    let (e, l, hq, hkv, inter) = (
        m.c("hidden_size"),
        m.c("num_hidden_layers"),
        m.c("num_attention_heads"),
        m.c("num_key_value_heads"),
        m.c("intermediate_size"),
    );
    let d = e / hq;
    let eps = m.cfg["rms_norm_eps"].as_f64().unwrap() as f32;
    let inv = inv_freq(m.cfg["rope_parameters"]["rope_theta"].as_f64().unwrap(), d);
    let emb = m.w("model.embed_tokens.weight");
    let head = m.w("lm_head.weight");
    let vocab = m.c("vocab_size");
    let mut caches: Vec<Cache> = (0..l)
        .map(|_| Cache {
            k: vec![0.0; s_max * hkv * d],
            v: vec![0.0; s_max * hkv * d],
        })
        .collect();
    Box::new(move |ids, past| {
        let t = ids.len();
        let mut h = vec![0f32; t * e];
        embed(emb.w(), vocab, e, ids, &mut h).unwrap();
        let mut n = vec![0f32; t * e];
        for (i, c) in caches.iter_mut().enumerate() {
            let p = |s: &str| format!("model.layers.{i}.{s}");
            rms_norm(&h, &m.f(&p("input_layernorm.weight")), eps, &mut n).unwrap();
            let mut q = lin(&n, t, e, &m.w(&p("self_attn.q_proj.weight")), None);
            let mut k = lin(&n, t, e, &m.w(&p("self_attn.k_proj.weight")), None);
            let v = lin(&n, t, e, &m.w(&p("self_attn.v_proj.weight")), None);
            rope(&mut q, t, hq, d, d, &inv, past).unwrap();
            rope(&mut k, t, hkv, d, d, &inv, past).unwrap();
            let a = attend(c, &q, &k, &v, t, hq, hkv, d, past);
            add(
                &mut h,
                &lin(&a, t, e, &m.w(&p("self_attn.o_proj.weight")), None),
            )
            .unwrap();
            rms_norm(&h, &m.f(&p("post_attention_layernorm.weight")), eps, &mut n).unwrap();
            let mut g = lin(&n, t, e, &m.w(&p("mlp.gate_proj.weight")), None);
            let u = lin(&n, t, e, &m.w(&p("mlp.up_proj.weight")), None);
            silu_mul(&mut g, &u).unwrap();
            add(
                &mut h,
                &lin(&g, t, inter, &m.w(&p("mlp.down_proj.weight")), None),
            )
            .unwrap();
        }
        rms_norm(&h, &m.f("model.norm.weight"), eps, &mut n).unwrap();
        lin(&n, t, e, &head, None)
    })
}

fn gpt2(m: &Model, s_max: usize) -> Step<'_> {
    let (e, l, hq) = (m.c("n_embd"), m.c("n_layer"), m.c("n_head"));
    let d = e / hq;
    let eps = m.cfg["layer_norm_epsilon"].as_f64().unwrap() as f32;
    let wte = m.w("transformer.wte.weight");
    let wpe = m.w("transformer.wpe.weight");
    let (vocab, npos) = (m.c("vocab_size"), m.c("n_positions"));
    let mut caches: Vec<Cache> = (0..l)
        .map(|_| Cache {
            k: vec![0.0; s_max * e],
            v: vec![0.0; s_max * e],
        })
        .collect();
    Box::new(move |ids, past| {
        let t = ids.len();
        let mut h = vec![0f32; t * e];
        embed(wte.w(), vocab, e, ids, &mut h).unwrap();
        let pos: Vec<u32> = (past..past + t).map(|p| p as u32).collect();
        let mut pe = vec![0f32; t * e];
        embed(wpe.w(), npos, e, &pos, &mut pe).unwrap();
        add(&mut h, &pe).unwrap();
        let mut n = vec![0f32; t * e];
        for (i, c) in caches.iter_mut().enumerate() {
            let p = |s: &str| format!("transformer.h.{i}.{s}");
            layer_norm(
                &h,
                &m.f(&p("ln_1.weight")),
                &m.f(&p("ln_1.bias")),
                eps,
                &mut n,
            )
            .unwrap();
            let qkv = lin(
                &n,
                t,
                e,
                &m.conv1d(&p("attn.c_attn.weight")),
                Some(&m.f(&p("attn.c_attn.bias"))),
            );
            let mut parts = [vec![0f32; t * e], vec![0f32; t * e], vec![0f32; t * e]];
            for (j, part) in parts.iter_mut().enumerate() {
                copy_2d(&qkv, j * e, 3 * e, part, 0, e, t, e).unwrap();
            }
            let a = attend(c, &parts[0], &parts[1], &parts[2], t, hq, hq, d, past);
            add(
                &mut h,
                &lin(
                    &a,
                    t,
                    e,
                    &m.conv1d(&p("attn.c_proj.weight")),
                    Some(&m.f(&p("attn.c_proj.bias"))),
                ),
            )
            .unwrap();
            layer_norm(
                &h,
                &m.f(&p("ln_2.weight")),
                &m.f(&p("ln_2.bias")),
                eps,
                &mut n,
            )
            .unwrap();
            let mut f = lin(
                &n,
                t,
                e,
                &m.conv1d(&p("mlp.c_fc.weight")),
                Some(&m.f(&p("mlp.c_fc.bias"))),
            );
            gelu_tanh(&mut f);
            add(
                &mut h,
                &lin(
                    &f,
                    t,
                    4 * e,
                    &m.conv1d(&p("mlp.c_proj.weight")),
                    Some(&m.f(&p("mlp.c_proj.bias"))),
                ),
            )
            .unwrap();
        }
        layer_norm(
            &h,
            &m.f("transformer.ln_f.weight"),
            &m.f("transformer.ln_f.bias"),
            eps,
            &mut n,
        )
        .unwrap();
        lin(&n, t, e, &wte, None)
    })
}

fn gpt_neox(m: &Model, s_max: usize) -> Step<'_> {
    let (e, l, hq, inter) = (
        m.c("hidden_size"),
        m.c("num_hidden_layers"),
        m.c("num_attention_heads"),
        m.c("intermediate_size"),
    );
    let d = e / hq;
    let eps = m.cfg["layer_norm_eps"].as_f64().unwrap() as f32;
    let rp = &m.cfg["rope_parameters"];
    let rd = (d as f64 * rp["partial_rotary_factor"].as_f64().unwrap()) as usize;
    let inv = inv_freq(rp["rope_theta"].as_f64().unwrap(), rd);
    assert!(m.cfg["use_parallel_residual"].as_bool().unwrap());
    let emb = m.w("gpt_neox.embed_in.weight");
    let head = m.w("embed_out.weight");
    let vocab = m.c("vocab_size");
    let mut caches: Vec<Cache> = (0..l)
        .map(|_| Cache {
            k: vec![0.0; s_max * e],
            v: vec![0.0; s_max * e],
        })
        .collect();
    Box::new(move |ids, past| {
        let t = ids.len();
        let mut h = vec![0f32; t * e];
        embed(emb.w(), vocab, e, ids, &mut h).unwrap();
        let mut n = vec![0f32; t * e];
        for (i, c) in caches.iter_mut().enumerate() {
            let p = |s: &str| format!("gpt_neox.layers.{i}.{s}");
            layer_norm(
                &h,
                &m.f(&p("input_layernorm.weight")),
                &m.f(&p("input_layernorm.bias")),
                eps,
                &mut n,
            )
            .unwrap();
            let qkv = lin(
                &n,
                t,
                e,
                &m.w(&p("attention.query_key_value.weight")),
                Some(&m.f(&p("attention.query_key_value.bias"))),
            );
            // [t, heads, 3, d] -> q, k, v [t, heads, d]
            let mut parts = [vec![0f32; t * e], vec![0f32; t * e], vec![0f32; t * e]];
            for (j, part) in parts.iter_mut().enumerate() {
                copy_2d(&qkv, j * d, 3 * d, part, 0, d, t * hq, d).unwrap();
            }
            let [mut q, mut k, v] = parts;
            rope(&mut q, t, hq, d, rd, &inv, past).unwrap();
            rope(&mut k, t, hq, d, rd, &inv, past).unwrap();
            let a = attend(c, &q, &k, &v, t, hq, hq, d, past);
            let attn = lin(
                &a,
                t,
                e,
                &m.w(&p("attention.dense.weight")),
                Some(&m.f(&p("attention.dense.bias"))),
            );
            layer_norm(
                &h,
                &m.f(&p("post_attention_layernorm.weight")),
                &m.f(&p("post_attention_layernorm.bias")),
                eps,
                &mut n,
            )
            .unwrap();
            let mut f = lin(
                &n,
                t,
                e,
                &m.w(&p("mlp.dense_h_to_4h.weight")),
                Some(&m.f(&p("mlp.dense_h_to_4h.bias"))),
            );
            gelu_erf(&mut f);
            let mlp = lin(
                &f,
                t,
                inter,
                &m.w(&p("mlp.dense_4h_to_h.weight")),
                Some(&m.f(&p("mlp.dense_4h_to_h.bias"))),
            );
            add(&mut h, &attn).unwrap();
            add(&mut h, &mlp).unwrap();
        }
        layer_norm(
            &h,
            &m.f("gpt_neox.final_layer_norm.weight"),
            &m.f("gpt_neox.final_layer_norm.bias"),
            eps,
            &mut n,
        )
        .unwrap();
        lin(&n, t, e, &head, None)
    })
}

fn opt(m: &Model, s_max: usize) -> Step<'_> {
    let (e, l, hq, ffn) = (
        m.c("hidden_size"),
        m.c("num_hidden_layers"),
        m.c("num_attention_heads"),
        m.c("ffn_dim"),
    );
    let d = e / hq;
    let eps = 1e-5f32; // OPT's nn.LayerNorm default
    assert!(m.cfg["do_layer_norm_before"].as_bool().unwrap());
    let emb = m.w("model.decoder.embed_tokens.weight");
    let pos_emb = m.w("model.decoder.embed_positions.weight");
    let vocab = m.c("vocab_size");
    let npos = m.st.tensors["model.decoder.embed_positions.weight"].shape[0];
    let mut caches: Vec<Cache> = (0..l)
        .map(|_| Cache {
            k: vec![0.0; s_max * e],
            v: vec![0.0; s_max * e],
        })
        .collect();
    Box::new(move |ids, past| {
        let t = ids.len();
        let mut h = vec![0f32; t * e];
        embed(emb.w(), vocab, e, ids, &mut h).unwrap();
        // OPTLearnedPositionalEmbedding: index = position + 2.
        let pos: Vec<u32> = (past..past + t).map(|p| p as u32 + 2).collect();
        let mut pe = vec![0f32; t * e];
        embed(pos_emb.w(), npos, e, &pos, &mut pe).unwrap();
        add(&mut h, &pe).unwrap();
        let mut n = vec![0f32; t * e];
        for (i, c) in caches.iter_mut().enumerate() {
            let p = |s: &str| format!("model.decoder.layers.{i}.{s}");
            let lp = |s: &str| {
                (
                    m.w(&p(&format!("{s}.weight"))),
                    m.f(&p(&format!("{s}.bias"))),
                )
            };
            layer_norm(
                &h,
                &m.f(&p("self_attn_layer_norm.weight")),
                &m.f(&p("self_attn_layer_norm.bias")),
                eps,
                &mut n,
            )
            .unwrap();
            let (wq, bq) = lp("self_attn.q_proj");
            let (wk, bk) = lp("self_attn.k_proj");
            let (wv, bv) = lp("self_attn.v_proj");
            let (q, k, v) = (
                lin(&n, t, e, &wq, Some(&bq)),
                lin(&n, t, e, &wk, Some(&bk)),
                lin(&n, t, e, &wv, Some(&bv)),
            );
            let a = attend(c, &q, &k, &v, t, hq, hq, d, past);
            let (wo, bo) = lp("self_attn.out_proj");
            add(&mut h, &lin(&a, t, e, &wo, Some(&bo))).unwrap();
            layer_norm(
                &h,
                &m.f(&p("final_layer_norm.weight")),
                &m.f(&p("final_layer_norm.bias")),
                eps,
                &mut n,
            )
            .unwrap();
            let (w1, b1) = lp("fc1");
            let mut f = lin(&n, t, e, &w1, Some(&b1));
            relu(&mut f);
            let (w2, b2) = lp("fc2");
            add(&mut h, &lin(&f, t, ffn, &w2, Some(&b2))).unwrap();
        }
        layer_norm(
            &h,
            &m.f("model.decoder.final_layer_norm.weight"),
            &m.f("model.decoder.final_layer_norm.bias"),
            eps,
            &mut n,
        )
        .unwrap();
        lin(&n, t, e, &emb, None)
    })
}

/// Max |got - want| over max |want|.
fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |a, &b| a.max((b as f64).abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f64, |a, (&g, &w)| a.max((g as f64 - w as f64).abs()));
    diff / scale
}

fn check(name: &str, build: for<'a> fn(&'a Model, usize) -> Step<'a>) {
    let (m, ids, want) = Model::load(name);
    let t = ids.len();
    let vocab = want.len() / t;
    // Prefill: one call over all tokens.
    let prefill = build(&m, t)(&ids, 0);
    let e1 = rel_err(&prefill, &want);
    // Decode: a short prefill, then one token per call.
    let mut step = build(&m, t);
    let mut dec = step(&ids[..5], 0);
    for p in 5..t {
        dec.extend(step(&ids[p..p + 1], p));
    }
    let e2 = rel_err(&dec, &want);
    // Greedy agreement with the reference at every position.
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > row[b] { i } else { b })
    };
    let agree = (0..t)
        .filter(|&i| {
            argmax(&dec[i * vocab..(i + 1) * vocab]) == argmax(&want[i * vocab..(i + 1) * vocab])
        })
        .count();
    eprintln!(
        "{name}: prefill rel err {e1:.2e}, decode rel err {e2:.2e}, argmax agree {agree}/{t}"
    );
    assert!(
        e1 < 1e-4,
        "{name}: prefill logits differ from transformers by {e1:e} of their range"
    );
    assert!(
        e2 < 1e-4,
        "{name}: decode logits differ from transformers by {e2:e} of their range"
    );
    assert!(
        agree >= t - 1,
        "{name}: greedy tokens agree at only {agree}/{t} positions"
    );
}

#[test]
fn runtime_llama_matches_transformers() {
    check("llama", llama);
}

#[test]
fn runtime_gpt2_matches_transformers() {
    check("gpt2", gpt2);
}

#[test]
fn runtime_gpt_neox_matches_transformers() {
    check("gpt_neox", gpt_neox);
}

#[test]
fn runtime_opt_matches_transformers() {
    check("opt", opt);
}
