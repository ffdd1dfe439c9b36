// The GPTQ solver's O(K³) step (AutoGPTQ `fasterquant` steps 2-6, as the Rust solver does it):
// the upper Cholesky factor U of the damped, permuted H⁻¹ (H⁻¹ = UᵀU), computed as
// U = J·L⁻¹·J where J·Hp·J = L·Lᵀ (J reverses the index order), fp32.
//
//   fill          M[a][b] = Hp[K−1−a][K−1−b] (lower; upper zeroed), Hp = H[perm][:, perm],
//                 diagonal diag'[perm[K−1−a]] + damp (dead columns have diag' = 1)
//   chol_diag     Cholesky of one diagonal block (≤ 64) in workgroup memory; the first
//                 non-positive or non-finite pivot goes to Status[0] (atomic min)
//   chol_panel    L21 = A21·L11⁻ᵀ, one thread per row
//                 (the trailing update A22 −= L21·L21ᵀ is gptq_solve_gemm.wgsl's gemm)
//   tri_inv_diag  in-place inverse of one lower-triangular diagonal block
//                 (the off-diagonal blocks of L⁻¹ are gemm products)
//   flip          U[i][j] = L⁻¹[K−1−i][K−1−j] in place (strictly lower part zero)
//
// Bindings: fill 1 H, 2 Aux (perm u32[K], then diag' as f32 bits [K]), 3 M;
// chol_diag 1 M, 2 Status; chol_panel, tri_inv_diag, flip 1 M.

struct Params {
  K: u32,
  k0: u32,     // first row/column of the diagonal block
  kb: u32,     // its size (≤ 64)
  damp: f32,   // damp_percent · mean(diag)
  gx: u32,     // workgroups along x of a 2-D grid
}

@group(0) @binding(0) var<uniform> P: Params;

// ---- fill ----

@group(0) @binding(1) var<storage, read> H: array<f32>;
@group(0) @binding(2) var<storage, read> Aux: array<u32>;
@group(0) @binding(3) var<storage, read_write> Mf: array<f32>;

@compute @workgroup_size(16, 16)
fn fill(@builtin(global_invocation_id) g: vec3<u32>) {
  let a = g.y;
  let b = g.x;
  let K = P.K;
  if (a >= K || b >= K) {
    return;
  }
  var v = 0.0;
  if (b < a) {
    v = H[Aux[K - 1u - a] * K + Aux[K - 1u - b]];
  } else if (a == b) {
    v = bitcast<f32>(Aux[K + Aux[K - 1u - a]]) + P.damp;
  }
  Mf[a * K + b] = v;
}

// ---- chol_diag ----

const NB: u32 = 64u;

@group(0) @binding(1) var<storage, read_write> M: array<f32>;
@group(0) @binding(2) var<storage, read_write> Status: array<atomic<u32>>;

var<workgroup> S: array<f32, 4096>;  // [NB][NB]

fn finite(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(256)
fn chol_diag(@builtin(local_invocation_index) tid: u32) {
  let K = P.K;
  let k0 = P.k0;
  let kb = P.kb;
  for (var e = tid; e < kb * kb; e += 256u) {
    S[(e / kb) * NB + e % kb] = M[(k0 + e / kb) * K + k0 + e % kb];
  }
  workgroupBarrier();
  for (var j = 0u; j < kb; j++) {
    let d = S[j * NB + j];
    if (tid == 0u && !(d > 0.0 && finite(d))) {
      atomicMin(&Status[0], k0 + j);
    }
    let ljj = sqrt(d);
    for (var r = j + 1u + tid; r < kb; r += 256u) {
      S[r * NB + j] = S[r * NB + j] / ljj;
    }
    workgroupBarrier();
    if (tid == 0u) {
      S[j * NB + j] = ljj;
    }
    // Trailing update of the block: S[r][c] −= S[r][j]·S[c][j] for j < c ≤ r.
    let n = kb - j - 1u;
    for (var e = tid; e < n * n; e += 256u) {
      let r = j + 1u + e / n;
      let c = j + 1u + e % n;
      if (c <= r) {
        S[r * NB + c] = S[r * NB + c] - S[r * NB + j] * S[c * NB + j];
      }
    }
    workgroupBarrier();
  }
  for (var e = tid; e < kb * kb; e += 256u) {
    let r = e / kb;
    let c = e % kb;
    var v = 0.0;
    if (c <= r) {
      v = S[r * NB + c];
    }
    M[(k0 + r) * K + k0 + c] = v;
  }
}

// ---- chol_panel: rows k0+kb.. of the block's columns, forward substitution ----

@compute @workgroup_size(64)
fn chol_panel(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let K = P.K;
  let k0 = P.k0;
  let kb = P.kb;
  for (var e = tid; e < kb * kb; e += 64u) {
    S[(e / kb) * NB + e % kb] = M[(k0 + e / kb) * K + k0 + e % kb];
  }
  workgroupBarrier();
  let i = k0 + kb + (wid.x + wid.y * P.gx) * 64u + tid;
  if (i >= K) {
    return;
  }
  var row: array<f32, 64>;
  for (var j = 0u; j < kb; j++) {
    row[j] = M[i * K + k0 + j];
  }
  for (var j = 0u; j < kb; j++) {
    var v = row[j];
    for (var p = 0u; p < j; p++) {
      v -= row[p] * S[j * NB + p];
    }
    row[j] = v / S[j * NB + j];
  }
  for (var j = 0u; j < kb; j++) {
    M[i * K + k0 + j] = row[j];
  }
}

// ---- tri_inv_diag: the diagonal block at (k0, k0) := its inverse (lower triangular) ----

@compute @workgroup_size(64)
fn tri_inv_diag(@builtin(local_invocation_index) tid: u32) {
  let K = P.K;
  let k0 = P.k0;
  let kb = P.kb;
  for (var e = tid; e < kb * kb; e += 64u) {
    S[(e / kb) * NB + e % kb] = M[(k0 + e / kb) * K + k0 + e % kb];
  }
  workgroupBarrier();
  // Columns from the last: X[j][j] = 1/L[j][j]; X[r][j] = −X[j][j]·Σ_{j<c≤r} X[r][c]·L[c][j].
  for (var jj = 0u; jj < kb; jj++) {
    let j = kb - 1u - jj;
    let inv = 1.0 / S[j * NB + j];
    let r = j + 1u + tid;
    var y = 0.0;
    if (r < kb) {
      for (var c = j + 1u; c <= r; c++) {
        y += S[r * NB + c] * S[c * NB + j];
      }
    }
    workgroupBarrier();
    if (r < kb) {
      S[r * NB + j] = -inv * y;
    }
    if (tid == 0u) {
      S[j * NB + j] = inv;
    }
    workgroupBarrier();
  }
  for (var e = tid; e < kb * kb; e += 64u) {
    let r = e / kb;
    let c = e % kb;
    if (c <= r) {
      M[(k0 + r) * K + k0 + c] = S[r * NB + c];
    }
  }
}

// ---- flip: U = J·L⁻¹·J in place ----

@compute @workgroup_size(16, 16)
fn flip(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.y;
  let j = g.x;
  let K = P.K;
  if (i >= K || j > i) {
    return;
  }
  let pi = K - 1u - i;
  let pj = K - 1u - j;
  if (i == j) {
    if (i < pi) {
      let t = M[i * K + i];
      M[i * K + i] = M[pi * K + pi];
      M[pi * K + pi] = t;
    }
    return;
  }
  M[pi * K + pj] = M[i * K + j];
  M[i * K + j] = 0.0;
}
