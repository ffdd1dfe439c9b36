// Data movement between activation layouts.
// Bindings: 1 x [T, 3·H·D], 2 q, 3 k, 4 v (each [T, H·D]).

struct Params {
  T: u32,
  H: u32,
  D: u32,
  per_head: u32,   // 0: x = [q | k | v]; 1: x = per head [q_h | k_h | v_h]
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Q: array<f32>;
@group(0) @binding(3) var<storage, read_write> Kt: array<f32>;
@group(0) @binding(4) var<storage, read_write> V: array<f32>;

@compute @workgroup_size(256)
fn split_qkv(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  let hd = P.H * P.D;
  if (i >= P.T * hd) {
    return;
  }
  let t = i / hd;
  let j = i % hd;
  var o = t * 3u * hd + j;
  var step = hd;
  if (P.per_head != 0u) {
    o = t * 3u * hd + (j / P.D) * 3u * P.D + j % P.D;
    step = P.D;
  }
  Q[i] = X[o];
  Kt[i] = X[o + step];
  V[i] = X[o + 2u * step];
}
