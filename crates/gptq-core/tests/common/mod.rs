// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Test helpers: a minimal safetensors reader and the shared data location.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

/// `<repo>/../shared/data`, failing loudly if it is missing (tests never skip).
pub fn data_dir() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    assert!(
        p.join("golden/autogptq/cases.json").exists(),
        "test data not found at {}: the shared data directory must sit beside the repo",
        p.display()
    );
    p
}

pub struct Tensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Tensor {
    pub fn f32(&self) -> Vec<f32> {
        assert_eq!(self.dtype, "F32");
        self.data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
    pub fn i32(&self) -> Vec<i32> {
        assert_eq!(self.dtype, "I32");
        self.data
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

pub struct St {
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

pub fn read_safetensors(path: &std::path::Path) -> St {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let body = &bytes[8 + n..];
    let mut tensors = HashMap::new();
    let mut metadata = HashMap::new();
    for (name, v) in header.as_object().unwrap() {
        if name == "__metadata__" {
            for (mk, mv) in v.as_object().unwrap() {
                metadata.insert(mk.clone(), mv.as_str().unwrap().to_string());
            }
            continue;
        }
        let off = v["data_offsets"].as_array().unwrap();
        let (a, b) = (
            off[0].as_u64().unwrap() as usize,
            off[1].as_u64().unwrap() as usize,
        );
        tensors.insert(
            name.clone(),
            Tensor {
                dtype: v["dtype"].as_str().unwrap().to_string(),
                shape: v["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
                data: body[a..b].to_vec(),
            },
        );
    }
    St { tensors, metadata }
}

/// Deterministic xorshift64* RNG.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Student-t with `nu` degrees of freedom (heavy-tailed).
    pub fn student_t(&mut self, nu: u32) -> f64 {
        let z = self.normal();
        let chi2: f64 = (0..nu).map(|_| self.normal().powi(2)).sum();
        z / (chi2 / nu as f64).sqrt()
    }
}
