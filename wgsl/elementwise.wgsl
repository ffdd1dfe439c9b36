// Elementwise kernels over f32 activations. Binding 0: params; 1..n: storage.
// The grid is 2-D so that n may exceed 65535 workgroups of 256.

struct Params {
  n: u32,      // element count
  op: u32,     // activation: 0 silu, 1 relu, 2 gelu (tanh form, HF gelu_new), 3 gelu (erf)
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

// erf as the reference kernels compute it: a Maclaurin series below 0.5, the
// Numerical Recipes erfc approximation above (relative error < 1.2e-7).
fn erf_f32(x: f32) -> f32 {
  let ax = abs(x);
  if (ax < 0.5) {
    var term = x;
    var sum = x;
    let x2 = x * x;
    for (var n = 1; n < 12; n++) {
      term *= -x2 / f32(n);
      sum += term / f32(2 * n + 1);
    }
    return 1.1283791670955126 * sum;
  }
  let t = 1.0 / (1.0 + 0.5 * ax);
  let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277))))))));
  let y = t * exp(-ax * ax + p);
  return select(y - 1.0, 1.0 - y, x >= 0.0);
}

fn act(x: f32) -> f32 {
  switch P.op {
    case 0u: {
      return x / (1.0 + exp(-x));
    }
    case 1u: {
      return select(0.0, x, x > 0.0);
    }
    case 2u: {
      // tanh saturates long before 15; clamping keeps exp-based tanh from overflowing.
      let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
      return 0.5 * x * (1.0 + tanh(u));
    }
    default: {
      return 0.5 * x * (1.0 + erf_f32(x * 0.7071067811865476));
    }
  }
}

// a[i] += b[i]
@compute @workgroup_size(256)
fn add_inplace(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < P.n) {
    a[i] = a[i] + b[i];
  }
}

// a[i] = act(a[i])
@compute @workgroup_size(256)
fn activate(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < P.n) {
    a[i] = act(a[i]);
  }
}

// a[i] = act(a[i]) * b[i]
@compute @workgroup_size(256)
fn gated_activate(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < P.n) {
    a[i] = act(a[i]) * b[i];
  }
}
