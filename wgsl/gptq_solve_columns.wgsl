// The GPTQ column loop (AutoGPTQ `fasterquant` step 7, as the Rust solver does it), fp32, on a
// band of `rows` rows of W (rows are independent given U):
//
//   permute      Wp[r][i] = dead[perm[i]] ? 0 : W[r][perm[i]]   (processing order)
//   params_rows  scale/zero per (row, group) computed up front: one group per row (g = −1: the
//                whole original row, before dead columns are zeroed) or static groups (groups
//                of the unpermuted, dead-zeroed row)
//   columns      one block [i1, i1+count) of the column loop, one thread per row, the row's
//                block in workgroup memory: dynamic groups get their parameters from Wp at the
//                block start (AutoGPTQ's quirk), codes go out in the original column order
//                (bytes packed 4 per u32), err = (w − q)/U[i][i] into Err for the lazy batch
//                update (a gemm), and the loss Σ (w − q)²/U[i][i]²/2 accumulates per row.
//
// Exactness: `round(x / scale)` decides the integer code, so the division is correctly
// rounded (`div_rn`, integer long division; WGSL's `/` may be off by 2.5 ulp) and rounding
// is WGSL's round-half-to-even, as torch.round and Rust's round_ties_even. find_params uses the
// same correctly rounded division for the scale and the asymmetric zero point.
//
// Bindings: permute 1 W, 2 Aux, 3 Wp; params_rows 1 W, 2 Aux, 3 SZ; div_check 1 a, 2 b bits, 3 out;
// columns 1 Wp, 2 Aux, 3 SZ, 4 U [K, K], 5 Err [rows, bs], 6 Codes [rows, K4] (u32).
// Aux (u32): perm [K], dead flags [K], then the MSE shrink factors (f32 bits) [mse_steps].
// SZ (f32): scale [rows·G], zero [rows·G], loss [rows].

struct Params {
  K: u32,
  rows: u32,
  G: u32,
  gw: u32,         // group width (K when g = −1)
  i1: u32,         // first column of the block (processing order)
  count: u32,      // columns in the block (≤ 128)
  K4: u32,         // u32 words per row of Codes
  bs: u32,         // row stride of Err (the blocksize)
  mode: u32,       // 0: one group per row; 1: dynamic groups; 2: static groups
  maxq: f32,
  sym: u32,
  mse_steps: u32,  // 0: plain min-max
  norm: f32,       // MSE error norm (2.4)
  one: f32,        // 1.0, opaque to the compiler (keeps p·xmin and p·xmax rounded)
  gx: u32,         // workgroups along x of a 2-D grid
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Wr: array<f32>;
@group(0) @binding(2) var<storage, read> Aux: array<u32>;
@group(0) @binding(3) var<storage, read_write> RW: array<f32>;
@group(0) @binding(4) var<storage, read> U: array<f32>;
@group(0) @binding(5) var<storage, read_write> Err: array<f32>;
@group(0) @binding(6) var<storage, read_write> Codes: array<u32>;

// Correctly rounded a / b (round to nearest, ties to even) for normal a, b and a normal
// quotient; zeros, subnormals, infinities and NaN fall back to `/`.
fn div_rn(a: f32, b: f32) -> f32 {
  let ua = bitcast<u32>(a);
  let ub = bitcast<u32>(b);
  let ea = i32((ua >> 23u) & 0xffu);
  let eb = i32((ub >> 23u) & 0xffu);
  if (ea == 0 || ea == 255 || eb == 0 || eb == 255) {
    return a / b;
  }
  var ma = (ua & 0x7fffffu) | 0x800000u;
  let mb = (ub & 0x7fffffu) | 0x800000u;
  var e = ea - eb + 127;
  if (ma < mb) {
    ma = ma << 1u;
    e = e - 1;
  }
  // ma/mb in [1, 2): 24 quotient bits and a rounding bit.
  var q = 0u;
  var r = ma;
  for (var i = 0u; i < 25u; i++) {
    q = q << 1u;
    if (r >= mb) {
      r = r - mb;
      q = q | 1u;
    }
    r = r << 1u;
  }
  let half = q & 1u;
  q = q >> 1u;
  if (half == 1u && (r != 0u || (q & 1u) == 1u)) {
    q = q + 1u;
  }
  if (q == 0x1000000u) {
    q = q >> 1u;
    e = e + 1;
  }
  if (e <= 0 || e >= 255) {
    return a / b;
  }
  return bitcast<f32>(((ua ^ ub) & 0x80000000u) | (u32(e) << 23u) | (q & 0x7fffffu));
}

// AutoGPTQ's quantize: clamp(round(x / scale) + zero, 0, maxq) (the integer code).
fn code_of(x: f32, s: f32, z: f32) -> f32 {
  return clamp(round(div_rn(x, s)) + z, 0.0, P.maxq);
}

fn w_at(base: u32, col: u32, zero_dead: bool) -> f32 {
  if (zero_dead && Aux[P.K + col] != 0u) {
    return 0.0;
  }
  return Wr[base + col];
}

fn range_params(xmin: f32, xmax: f32) -> vec2<f32> {
  let s = div_rn(xmax - xmin, P.maxq);
  if (P.sym == 1u) {
    return vec2<f32>(s, (P.maxq + 1.0) / 2.0);
  }
  return vec2<f32>(s, round(div_rn(-xmin, s)));
}

// find_params over Wr[base + c0 .. base + c0 + len): (scale, zero).
fn find_params(base: u32, c0: u32, len: u32, zero_dead: bool) -> vec2<f32> {
  var xmin = 0.0;
  var xmax = 0.0;
  for (var i = 0u; i < len; i++) {
    let v = w_at(base, c0 + i, zero_dead);
    xmin = min(xmin, v);
    xmax = max(xmax, v);
  }
  if (P.sym == 1u) {
    xmax = max(xmax, abs(xmin));
    if (xmin < 0.0) {
      xmin = -xmax;
    }
  }
  if (xmin == 0.0 && xmax == 0.0) {
    xmin = -1.0;
    xmax = 1.0;
  }
  var best = range_params(xmin, xmax);
  if (P.mse_steps > 0u) {
    var best_err = 0.0;
    for (var k = 0u; k < P.mse_steps; k++) {
      let p = bitcast<f32>(Aux[2u * P.K + k]);
      let xmin1 = (p * xmin) * P.one;
      let xmax1 = (p * xmax) * P.one;
      var cand = range_params(xmin1, xmax1);
      if (P.sym == 1u) {
        cand.y = best.y;
      }
      var err = 0.0;
      for (var i = 0u; i < len; i++) {
        let v = w_at(base, c0 + i, zero_dead);
        let q = cand.x * (code_of(v, cand.x, cand.y) - cand.y);
        let d = abs(q - v);
        if (d > 0.0) {
          err += pow(d, P.norm);
        }
      }
      if (k == 0u || err < best_err) {
        best_err = err;
        best = cand;
      }
    }
  }
  return best;
}

// ---- permute ----

@compute @workgroup_size(16, 16)
fn permute(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x;
  let r = g.y;
  if (i >= P.K || r >= P.rows) {
    return;
  }
  let c = Aux[i];
  var v = 0.0;
  if (Aux[P.K + c] == 0u) {
    v = Wr[r * P.K + c];
  }
  RW[r * P.K + i] = v;
}

// ---- params_rows: one thread per (row, group) ----

@compute @workgroup_size(64)
fn params_rows(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let idx = g.x + g.y * nw.x * 64u;
  if (idx >= P.rows * P.G) {
    return;
  }
  let r = idx / P.G;
  let gi = idx % P.G;
  let c0 = gi * P.gw;
  let len = min(P.gw, P.K - c0);
  let p = find_params(r * P.K, c0, len, P.mode == 2u);
  RW[idx] = p.x;
  RW[P.rows * P.G + idx] = p.y;
}

// ---- columns: one block of the column loop ----

const WG: u32 = 32u;
const MAXB: u32 = 128u;

var<workgroup> tile: array<f32, 4096>;  // [MAXB][WG]: this workgroup's rows of the block

@compute @workgroup_size(32)
fn columns(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let r = (wid.x + wid.y * P.gx) * WG + lid;
  if (r >= P.rows) {
    return;
  }
  let K = P.K;
  let G = P.G;
  let i1 = P.i1;
  let count = P.count;
  let base = r * K;
  let zoff = P.rows * G;
  for (var i = 0u; i < count; i++) {
    tile[i * WG + lid] = Wr[base + i1 + i];
  }
  var s = 1.0;
  var z = 0.0;
  if (P.mode == 0u) {
    s = RW[r * G];
    z = RW[zoff + r * G];
  } else if (P.mode == 1u && i1 / P.gw < G) {
    s = RW[r * G + i1 / P.gw];
    z = RW[zoff + r * G + i1 / P.gw];
  }
  var loss = RW[2u * zoff + r];
  for (var i = 0u; i < count; i++) {
    let col = i1 + i;
    let oc = Aux[col];
    if (P.mode == 2u) {
      s = RW[r * G + oc / P.gw];
      z = RW[zoff + r * G + oc / P.gw];
    } else if (P.mode == 1u && col % P.gw == 0u) {
      let p = find_params(base, col, min(P.gw, K - col), false);
      s = p.x;
      z = p.y;
      RW[r * G + col / P.gw] = s;
      RW[zoff + r * G + col / P.gw] = z;
    }
    let x = tile[i * WG + lid];
    let c = code_of(x, s, z);
    let q = s * (c - z);
    let w = r * P.K4 + (oc >> 2u);
    let sh = (oc & 3u) * 8u;
    Codes[w] = (Codes[w] & ~(0xffu << sh)) | (u32(c) << sh);
    let ub = col * K;
    let d = U[ub + col];
    let diff = x - q;
    loss += diff * diff / (d * d) / 2.0;
    let e = diff / d;
    Err[r * P.bs + i] = e;
    for (var j = i + 1u; j < count; j++) {
      tile[j * WG + lid] -= e * U[ub + i1 + j];
    }
  }
  RW[2u * zoff + r] = loss;
}

// ---- div_check: out[i] = div_rn(a[i], b[i]) (the division's test) ----

@compute @workgroup_size(64)
fn div_check(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < P.K) {
    RW[g.x] = div_rn(Wr[g.x], bitcast<f32>(Aux[g.x]));
  }
}
