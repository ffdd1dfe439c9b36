// Elementwise kernels over f32 activations. Binding 0: params; 1..n: storage.

struct Params {
  n: u32,      // element count
  op: u32,     // 0: a += b
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

// a[i] += b[i]; the grid is 2-D so that n may exceed 65535 workgroups of 256.
@compute @workgroup_size(256)
fn add_inplace(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < P.n) {
    a[i] = a[i] + b[i];
  }
}
