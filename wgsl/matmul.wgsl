// Dense linear y[M, N] = x[M, K] · Wᵀ + bias over one row chunk of W (a weight larger than
// maxStorageBufferBindingSize is split by output rows; each chunk is one dispatch).
//
// The prelude (src/backends/webgpu/_dense.ts) declares binding 3, the chunk W, and
// `load_w4(i)`, which returns the i-th group of 4 consecutive weights as f32 (W is stored in
// f32, f16 or bf16). Rows of W are zero-padded to K4·4 elements.
//
// Bindings: 1 x (f32, read as vec4), 2 bias (f32; read only when has_bias), 3 W, 4 y.

struct Params {
  M: u32,        // rows of x (of this block)
  N: u32,        // row stride of y (all output features)
  K: u32,        // inner size (row stride of x)
  K4: u32,       // padded K / 4 (row stride of W in groups of 4)
  n0: u32,       // first output feature of this chunk
  nc: u32,       // output features in this chunk
  has_bias: u32,
  gx: u32,       // workgroups along x of a 2-D grid (gemv)
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

fn x_at(e: u32) -> f32 {
  return X[e >> 2u][e & 3u];
}

// x[m, k .. k+3], zero past K.
fn load_x4(m: u32, k: u32) -> vec4<f32> {
  let e = m * P.K + k;
  if (k + 4u <= P.K) {
    if ((e & 3u) == 0u) {
      return X[e >> 2u];
    }
    return vec4<f32>(x_at(e), x_at(e + 1u), x_at(e + 2u), x_at(e + 3u));
  }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) {
    if (k + j < P.K) {
      v[j] = x_at(e + j);
    }
  }
  return v;
}

fn bias_at(n: u32) -> f32 {
  if (P.has_bias != 0u) {
    return Bias[P.n0 + n];
  }
  return 0.0;
}

// ---- decode: M ≤ MT rows, GV_ROWS output features per workgroup, GV_LANES threads each ----

override MT: u32 = 1u;          // rows of x handled per dispatch (1..4)
const GV_ROWS: u32 = 8u;
const GV_LANES: u32 = 32u;

var<workgroup> gv_red: array<vec4<f32>, 256>;

@compute @workgroup_size(256)
fn gemv(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let r = tid / GV_LANES;
  let lane = tid % GV_LANES;
  let n = (wid.x + wid.y * P.gx) * GV_ROWS + r;
  var acc = vec4<f32>(0.0);
  if (n < P.nc) {
    let base = n * P.K4;
    for (var k4 = lane; k4 < P.K4; k4 += GV_LANES) {
      let w = load_w4(base + k4);
      let k = k4 * 4u;
      for (var m = 0u; m < MT; m++) {
        if (m < P.M) {
          acc[m] += dot(w, load_x4(m, k));
        }
      }
    }
  }
  gv_red[tid] = acc;
  workgroupBarrier();
  for (var s = GV_LANES / 2u; s > 0u; s = s >> 1u) {
    if (lane < s) {
      gv_red[tid] += gv_red[tid + s];
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < P.nc) {
    let out = gv_red[tid];
    let b = bias_at(n);
    for (var m = 0u; m < MT; m++) {
      if (m < P.M) {
        Y[m * P.N + P.n0 + n] = out[m] + b;
      }
    }
  }
}

// ---- prefill: 64×64 output tiles, K in steps of 16 through workgroup memory, 4×4 per thread ----

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> As: array<vec4<f32>, 256>;  // [TK][TM / 4]
var<workgroup> Bs: array<vec4<f32>, 256>;  // [TK][TN / 4]

@compute @workgroup_size(16, 16)
fn gemm(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
  let nb = wid.x * TN;
  let mb = wid.y * TM;
  let lr = tid / 4u;         // tile row this thread loads
  let lk = (tid % 4u) * 4u;  // its k offset in the tile
  let slot = lr / 4u;
  let comp = lr % 4u;
  var acc: array<vec4<f32>, 4>;
  let tiles = (P.K4 + 3u) / 4u;
  for (var t = 0u; t < tiles; t++) {
    let k0 = t * TK;
    var a = vec4<f32>(0.0);
    if (mb + lr < P.M) {
      a = load_x4(mb + lr, k0 + lk);
    }
    var b = vec4<f32>(0.0);
    let k4 = (k0 + lk) / 4u;
    if (nb + lr < P.nc && k4 < P.K4) {
      b = load_w4((nb + lr) * P.K4 + k4);
    }
    for (var j = 0u; j < 4u; j++) {
      As[(lk + j) * 16u + slot][comp] = a[j];
      Bs[(lk + j) * 16u + slot][comp] = b[j];
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let av = As[k * 16u + lid.y];
      let bv = Bs[k * 16u + lid.x];
      acc[0] += av.x * bv;
      acc[1] += av.y * bv;
      acc[2] += av.z * bv;
      acc[3] += av.w * bv;
    }
    workgroupBarrier();
  }
  let n = nb + lid.x * 4u;
  var bias = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) {
    if (n + j < P.nc) {
      bias[j] = bias_at(n + j);
    }
  }
  for (var i = 0u; i < 4u; i++) {
    let m = mb + lid.y * 4u + i;
    if (m < P.M) {
      let row = m * P.N + P.n0;
      for (var j = 0u; j < 4u; j++) {
        if (n + j < P.nc) {
          Y[row + n + j] = acc[i][j] + bias[j];
        }
      }
    }
  }
}
