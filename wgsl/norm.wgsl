// Row normalizations, one workgroup of 256 threads per row, f32 accumulation.
// rms_norm bindings: 1 x, 2 weight, 3 y.   layer_norm: 1 x, 2 weight, 3 y, 4 bias.

struct Params {
  rows: u32,
  H: u32,        // row width
  eps: f32,
  has_bias: u32,
  gx: u32,       // workgroups along x of the 2-D grid
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read> Bias: array<f32>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, 256>;

fn reduce_sum(tid: u32, v: f32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (tid < s) {
      red[tid] += red[tid + s];
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(256)
fn rms_norm(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let row = wid.x + wid.y * P.gx;
  if (row >= P.rows) {
    return;
  }
  let o = row * P.H;
  var ss = 0.0;
  for (var i = tid; i < P.H; i += WG) {
    let v = X[o + i];
    ss += v * v;
  }
  ss = reduce_sum(tid, ss);
  let r = 1.0 / sqrt(ss / f32(P.H) + P.eps);
  for (var i = tid; i < P.H; i += WG) {
    Y[o + i] = (X[o + i] * r) * Wt[i];
  }
}

@compute @workgroup_size(256)
fn layer_norm(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let row = wid.x + wid.y * P.gx;
  if (row >= P.rows) {
    return;
  }
  let o = row * P.H;
  var s = 0.0;
  for (var i = tid; i < P.H; i += WG) {
    s += X[o + i];
  }
  let mean = reduce_sum(tid, s) / f32(P.H);
  var v = 0.0;
  for (var i = tid; i < P.H; i += WG) {
    let d = X[o + i] - mean;
    v += d * d;
  }
  let r = 1.0 / sqrt(reduce_sum(tid, v) / f32(P.H) + P.eps);
  for (var i = tid; i < P.H; i += WG) {
    var b = 0.0;
    if (P.has_bias != 0u) {
      b = Bias[i];
    }
    Y[o + i] = (X[o + i] - mean) * r * Wt[i] + b;
  }
}
