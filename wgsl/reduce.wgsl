// Per-row reductions over logits, one workgroup of 256 threads per row.
// argmax_rows bindings: 1 x, 2 out (u32 index).   row_nll: 1 x, 2 out (f32 bits), 3 targets.

struct Params {
  rows: u32,
  cols: u32,
  row0: u32,     // index of this block's first row in out/targets
  gx: u32,       // workgroups along x of the 2-D grid
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<u32>;
@group(0) @binding(3) var<storage, read> Tg: array<i32>;

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;
var<workgroup> rv: array<f32, 256>;
var<workgroup> ri: array<u32, 256>;

// (v2, i2) beats (v1, i1): larger, or equal and earlier (first index on ties).
fn beats(v1: f32, i1: u32, v2: f32, i2: u32) -> bool {
  return i2 != NONE && (i1 == NONE || v2 > v1 || (v2 == v1 && i2 < i1));
}

@compute @workgroup_size(256)
fn argmax_rows(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let row = wid.x + wid.y * P.gx;
  if (row >= P.rows) {
    return;
  }
  let o = row * P.cols;
  var bv = 0.0;
  var bi = NONE;
  for (var c = tid; c < P.cols; c += WG) {
    let v = X[o + c];
    if (bi == NONE || v > bv) {
      bv = v;
      bi = c;
    }
  }
  rv[tid] = bv;
  ri[tid] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (tid < s && beats(rv[tid], ri[tid], rv[tid + s], ri[tid + s])) {
      rv[tid] = rv[tid + s];
      ri[tid] = ri[tid + s];
    }
    workgroupBarrier();
  }
  if (tid == 0u) {
    Out[P.row0 + row] = ri[0];
  }
}

@compute @workgroup_size(256)
fn row_nll(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let row = wid.x + wid.y * P.gx;
  if (row >= P.rows) {
    return;
  }
  let o = row * P.cols;
  var mx = -3.0e38;
  for (var c = tid; c < P.cols; c += WG) {
    mx = max(mx, X[o + c]);
  }
  rv[tid] = mx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (tid < s) {
      rv[tid] = max(rv[tid], rv[tid + s]);
    }
    workgroupBarrier();
  }
  mx = rv[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var c = tid; c < P.cols; c += WG) {
    sum += exp(X[o + c] - mx);
  }
  rv[tid] = sum;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (tid < s) {
      rv[tid] += rv[tid + s];
    }
    workgroupBarrier();
  }
  if (tid == 0u) {
    let tgt = u32(Tg[P.row0 + row]);
    Out[P.row0 + row] = bitcast<u32>(log(rv[0]) + mx - X[o + tgt]);
  }
}
