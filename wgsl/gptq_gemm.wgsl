// GPTQ dequant-GEMM for prefill (M > 8 rows): y[M, N] = x[M, K] · Wᵀ + bias, f32 accumulation.
// Binding 0: params; 1..5: x, qw, sz, aux, y (layouts as in gptq_gemv.wgsl and _gptq.ts).
//
// The prelude defines BITS (2, 3, 4, 8); this file alone does not compile.
//
// Tiles: a workgroup of 16×16 threads computes a 64×64 tile of y, each thread 4 rows × 4 columns.
// Per 32-row step of K it stages x[64 rows, 32] transposed and W[32, 64 columns] dequantized to
// f32 (exact: an fp16 scale times a small integer) in workgroup memory (2 × 8 KiB), then does 32
// rank-1 updates of its 4×4 block from two vec4 reads each.

struct Params {
  M: u32,     // rows of x and y in this dispatch
  K: u32,     // input features (sorted order)
  NV: u32,    // columns of this slice / 4
  YN: u32,    // row stride of y in vec4 (N / 4)
  n0: u32,    // first column of this slice
  gs: u32,    // group size in sorted order, or 0: the group of row k is aux[gtab + k]
  gtab: u32,  // offset of the group table in aux
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> qw: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> sz: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> aux: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<vec4<f32>>;

const MASK: u32 = (1u << BITS) - 1u;

var<workgroup> xs: array<vec4<f32>, 512>; // [32 k][16]: rows 4r..4r+3 of the tile at row k
var<workgroup> ws: array<vec4<f32>, 512>; // [32 k][16]: columns 4c..4c+3 of the tile at row k

fn grp(k: u32) -> u32 {
  if (P.gs != 0u) {
    return k / P.gs;
  }
  return aux[P.gtab + k];
}

// W[k, 4 columns] for chunk c, chunk-local row j, dequantized.
fn weights(c: u32, j: u32, col4: u32) -> vec4<f32> {
  var q: vec4<u32>;
  if (BITS == 3u) {
    let lo = qw[(c * 3u + j / 16u) * P.NV + col4];
    let hi = qw[(c * 3u + 2u) * P.NV + col4];
    q = ((lo >> vec4<u32>(2u * (j % 16u))) & vec4<u32>(3u)) |
      (((hi >> vec4<u32>(j)) & vec4<u32>(1u)) << vec4<u32>(2u));
  } else {
    let per = 32u / BITS;
    let w = qw[(c * BITS + j / per) * P.NV + col4];
    q = (w >> vec4<u32>((j % per) * BITS)) & vec4<u32>(MASK);
  }
  let u = sz[grp(c * 32u + j) * P.NV + col4];
  let a = unpack2x16float(u.x);
  let b = unpack2x16float(u.y);
  let e = unpack2x16float(u.z);
  let d = unpack2x16float(u.w);
  return (vec4<f32>(q) - vec4<f32>(a.y, b.y, e.y, d.y)) * vec4<f32>(a.x, b.x, e.x, d.x);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let tid = lid.y * 16u + lid.x;
  let tn = lid.x;
  let tm = lid.y;
  let m0 = wid.y * 64u;
  let c40 = wid.x * 16u; // first column group (of 4) of the tile
  let C = P.K / 32u;
  var acc: array<vec4<f32>, 4>;
  for (var r = 0u; r < 4u; r++) {
    acc[r] = vec4<f32>(0.0);
  }
  // Staging roles: x — row group xr (4 rows), column xk; W — column group wc, rows wk, wk + 16.
  let xk = tid % 32u;
  let wc = tid % 16u;
  let wk = tid / 16u;
  for (var c = 0u; c < C; c++) {
    let k0 = c * 32u;
    for (var h = 0u; h < 2u; h++) {
      let xr = tid / 32u + h * 8u; // 0..15
      var v = vec4<f32>(0.0);
      for (var e = 0u; e < 4u; e++) {
        let m = m0 + xr * 4u + e;
        if (m < P.M) {
          v[e] = x[m * P.K + k0 + xk];
        }
      }
      xs[xk * 16u + xr] = v;
    }
    let col4 = c40 + wc;
    for (var h = 0u; h < 2u; h++) {
      let j = wk + h * 16u;
      var wv = vec4<f32>(0.0);
      if (col4 < P.NV) {
        wv = weights(c, j, col4);
      }
      ws[j * 16u + wc] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 32u; kk++) {
      let a = xs[kk * 16u + tm];
      let b = ws[kk * 16u + tn];
      acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
      acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
      acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
      acc[3] = fma(vec4<f32>(a.w), b, acc[3]);
    }
    workgroupBarrier();
  }
  let col4 = c40 + tn;
  if (col4 < P.NV) {
    let n = P.n0 + col4 * 4u;
    let b = vec4<f32>(
      bitcast<f32>(aux[n]),
      bitcast<f32>(aux[n + 1u]),
      bitcast<f32>(aux[n + 2u]),
      bitcast<f32>(aux[n + 3u]),
    );
    for (var r = 0u; r < 4u; r++) {
      let m = m0 + tm * 4u + r;
      if (m < P.M) {
        y[m * P.YN + n / 4u] = acc[r] + b;
      }
    }
  }
}
