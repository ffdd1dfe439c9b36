// Column gather: out[m, i] = x[m, perm[i]] for an [M, K] f32 matrix (act-order GPTQ inputs,
// sorted by group once at load). Binding 0: params; 1: x; 2: perm; 3: out.

struct Params {
  M: u32,
  K: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> perm: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// The grid is 2-D so that M·K may exceed 65535 workgroups of 256.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < P.M * P.K) {
    let m = i / P.K;
    let k = i - m * P.K;
    out[i] = x[m * P.K + perm[k]];
  }
}
