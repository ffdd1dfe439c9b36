// Merges the per-split partials (m, l, acc[D]) of attention.wgsl into the output.
// One workgroup of 64 threads per (query head h, new token t). Bindings: 1 partials, 2 out.

struct Params {
  Hq: u32,
  D: u32,
  nsplit: u32,
  ldq: u32,      // Hq·D
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Part: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;

@compute @workgroup_size(64)
fn combine(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.x;
  let t = wid.y;
  let stride = P.D + 2u;
  let pb = (t * P.Hq + h) * P.nsplit * stride;
  var mx = -3.0e38;
  for (var s = 0u; s < P.nsplit; s++) {
    mx = max(mx, Part[pb + s * stride]);
  }
  var l = 0.0;
  for (var s = 0u; s < P.nsplit; s++) {
    l += Part[pb + s * stride + 1u] * exp(Part[pb + s * stride] - mx);
  }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var d = tid; d < P.D; d += 64u) {
    var a = 0.0;
    for (var s = 0u; s < P.nsplit; s++) {
      let o = pb + s * stride;
      a += Part[o + 2u + d] * exp(Part[o] - mx);
    }
    O[t * P.ldq + h * P.D + d] = a * inv;
  }
}
