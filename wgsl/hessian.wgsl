// GPTQ Hessian on the device (AutoGPTQ `add_batch`, gptq-reference.md §2.3), fp32:
//   H *= n/(n+b); n += b; x *= sqrt(2/n); H += xᵀx
// fused into one pass per batch: H[i,j] = H[i,j]·ratio + Σ_t (s·x[t,i])·(s·x[t,j]), with
// ratio = n_old/n_new and s = sqrt(2/n_new) computed on the host in f64 and rounded to f32.
// Only tiles on or below the diagonal are accumulated; `symmetrize` mirrors them once the
// Hessian is complete, and `check` reads the diagonal and finds the first non-finite value.
//
// accumulate: bindings 1 X [T, K] (the layer input, row-major), 2 H [K, K].
// symmetrize: binding 1 H.
// check:      bindings 1 H, 2 out { first non-finite index (atomic min), diag[K] }.

struct Params {
  T: u32,       // rows of X (tokens)
  K: u32,       // features
  ratio: f32,   // n_old / n_new
  s: f32,       // sqrt(2 / n_new)
}

@group(0) @binding(0) var<uniform> P: Params;

// ---- accumulate: 64×64 tiles of H, tokens in steps of 16 through workgroup memory ----

@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> H: array<f32>;

const TS: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> As: array<vec4<f32>, 256>;  // [TK][TS / 4]: s·x[t, i0 + ·]
var<workgroup> Bs: array<vec4<f32>, 256>;  // [TK][TS / 4]: s·x[t, j0 + ·]

fn xs(t: u32, k: u32) -> f32 {
  if (t < P.T && k < P.K) {
    return P.s * X[t * P.K + k];
  }
  return 0.0;
}

@compute @workgroup_size(16, 16)
fn accumulate(@builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(local_invocation_index) tid: u32,
              @builtin(workgroup_id) wid: vec3<u32>) {
  // Tile (wid.y, wid.x) of H; tiles above the diagonal are skipped (the whole workgroup).
  if (wid.x > wid.y) {
    return;
  }
  let i0 = wid.y * TS;
  let j0 = wid.x * TS;
  let lt = tid / 16u;        // token row of the tile this thread loads
  let lc = (tid % 16u) * 4u; // its 4 columns
  var acc: array<vec4<f32>, 4>;
  for (var t0 = 0u; t0 < P.T; t0 += TK) {
    let t = t0 + lt;
    As[lt * 16u + lc / 4u] = vec4<f32>(xs(t, i0 + lc), xs(t, i0 + lc + 1u), xs(t, i0 + lc + 2u),
                                       xs(t, i0 + lc + 3u));
    Bs[lt * 16u + lc / 4u] = vec4<f32>(xs(t, j0 + lc), xs(t, j0 + lc + 1u), xs(t, j0 + lc + 2u),
                                       xs(t, j0 + lc + 3u));
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let a = As[k * 16u + lid.y];
      let b = Bs[k * 16u + lid.x];
      acc[0] += a.x * b;
      acc[1] += a.y * b;
      acc[2] += a.z * b;
      acc[3] += a.w * b;
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    let i = i0 + lid.y * 4u + r;
    if (i < P.K) {
      for (var c = 0u; c < 4u; c++) {
        let j = j0 + lid.x * 4u + c;
        if (j < P.K) {
          let o = i * P.K + j;
          H[o] = H[o] * P.ratio + acc[r][c];
        }
      }
    }
  }
}

// ---- symmetrize: H[i, j] = H[j, i] for j > i ----

@group(0) @binding(1) var<storage, read_write> Hs: array<f32>;

@compute @workgroup_size(16, 16)
fn symmetrize(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.y;
  let j = g.x;
  if (i < P.K && j < P.K && j > i) {
    Hs[i * P.K + j] = Hs[j * P.K + i];
  }
}

// ---- check: diagonal, and the first (row-major) non-finite value ----

struct CheckOut {
  first: atomic<u32>,   // 0xffffffff when every value is finite
  diag: array<f32>,
}

@group(0) @binding(1) var<storage, read> Hc: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: CheckOut;

fn finite(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(64)
fn check(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x;
  if (i >= P.K) {
    return;
  }
  Out.diag[i] = Hc[i * P.K + i];
  for (var j = 0u; j < P.K; j++) {
    if (!finite(Hc[i * P.K + j])) {
      atomicMin(&Out.first, i * P.K + j);
      break;
    }
  }
}
