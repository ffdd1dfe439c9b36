// Rotary embedding (rotate_half layout) in place on x [T, heads·headDim]: for i < half, the
// pair (i, i + half) of each head's first 2·half dims turns by (past + t) · invFreq[i].
// Bindings: 1 x, 2 invFreq [half].

struct Params {
  T: u32,
  heads: u32,
  headDim: u32,
  half: u32,
  past: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> X: array<f32>;
@group(0) @binding(2) var<storage, read> F: array<f32>;

// (sin x, cos x) to ~1e-7 absolute for |x| up to ~1e4, independent of the driver's sin/cos:
// Cody–Waite reduction by π/2 (three-part constant, exact products), then Taylor polynomials
// on [-π/4, π/4].
fn sincos(x: f32) -> vec2<f32> {
  let j = round(x * 0.6366197723675814);
  let r = ((x - j * 1.5703125) - j * 4.837512969970703125e-4) - j * 7.549789954891882e-8;
  let r2 = r * r;
  let s = r + r * r2 * (-0.16666666666666666 + r2 * (0.008333333333333333 +
    r2 * (-1.984126984126984e-4 + r2 * 2.7557319223985893e-6)));
  let c = 1.0 + r2 * (-0.5 + r2 * (0.041666666666666664 + r2 * (-0.001388888888888889 +
    r2 * (2.48015873015873e-5 - r2 * 2.755731922398589e-7))));
  switch (i32(j) & 3) {
    case 0: {
      return vec2<f32>(s, c);
    }
    case 1: {
      return vec2<f32>(c, -s);
    }
    case 2: {
      return vec2<f32>(-s, -c);
    }
    default: {
      return vec2<f32>(-c, s);
    }
  }
}

@compute @workgroup_size(256)
fn rope(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  let per_t = P.heads * P.half;
  if (i >= P.T * per_t) {
    return;
  }
  let t = i / per_t;
  let h = (i % per_t) / P.half;
  let j = i % P.half;
  let sc = sincos(f32(P.past + t) * F[j]);
  let o = (t * P.heads + h) * P.headDim + j;
  let a = X[o];
  let b = X[o + P.half];
  X[o] = a * sc.y - b * sc.x;
  X[o + P.half] = b * sc.y + a * sc.x;
}
