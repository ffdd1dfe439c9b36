// Device copy kernel: the bandwidth ceiling that bench/webgpu_bench.ts
// compares decode against (each byte copied is read once and written once).

struct Params {
  n4: u32,     // vec4 elements to copy
  stride: u32, // invocations per row of the 2-D grid (groups.x * 256)
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>;

@compute @workgroup_size(256)
fn copy_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * P.stride;
  if (i < P.n4) {
    dst[i] = src[i];
  }
}
