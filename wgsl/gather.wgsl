// Embedding gather y[t, :] = table[ids[t] + offset, :] for the rows of one table chunk
// (a table larger than maxStorageBufferBindingSize is split by rows; one dispatch each).
//
// The prelude (src/backends/webgpu/_dense.ts) declares binding 2, the chunk Tb, and
// `load_t(e)`, the e-th element of the chunk as f32 (stored f32, f16 or bf16).
//
// Bindings: 1 ids (i32), 2 Tb, 3 y.

struct Params {
  T: u32,        // ids
  cols: u32,     // row width
  offset: i32,   // added to every id
  r0: u32,       // first table row in this chunk
  rc: u32,       // rows in this chunk
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.T * P.cols) {
    return;
  }
  let t = i / P.cols;
  let c = i % P.cols;
  let r = Ids[t] + P.offset;
  if (r >= i32(P.r0) && r < i32(P.r0 + P.rc)) {
    Y[i] = load_t((u32(r) - P.r0) * P.cols + c);
  }
}
