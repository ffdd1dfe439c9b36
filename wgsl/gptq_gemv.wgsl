// GPTQ dequant-GEMV for decode (M ≤ 8 rows): y[M, N] = x[M, K] · Wᵀ + bias, f32 accumulation.
// Binding 0: params; 1..5: x, qw, sz, aux, y (see src/backends/webgpu/_gptq.ts for the layouts).
//
// The prelude defines the constants (this file alone does not compile):
//   BITS      bit width (2, 3, 4, 8)
//   MR        rows of this dispatch (1..8, = M)
//   WX, WY    workgroup shape: WX threads along N (4 columns each), WY slices along K (WX·WY = 256)
//   WPC, CPW  words per 32-row chunk read in the main loop, codes per such word
//
// Weights `qw` [K/32 chunks][BITS words][N/4] as vec4<u32>: one load is one packed word of 4
// adjacent output columns, so the WX threads of a row read WX·16 contiguous bytes. For 2/4/8 bits
// word i of chunk c holds codes 32c + i·(32/BITS) + t at bit t·BITS (GPTQ's own layout). For 3
// bits a chunk is two words of 2-bit low parts (16 codes each, bit 2t) and one word of the 32
// high bits (bit j). Inputs are sorted by group at load (act-order), so the rows of a chunk
// belong to one group unless a group boundary falls inside it.
//
// Each thread walks the chunks ty, ty+WY, ... of its 4 columns. Per chunk it forms q − z exactly
// in f32 with the 2^23 trick (bitcast(q | 0x4B000000) − (2^23 + z)), accumulates Σ x·(q − z) per
// row and adds s · acc into its partial sums; the WY partial sums of a column are then added in
// workgroup memory (a tree, no subgroups). A chunk that straddles a group boundary takes a slow
// path that looks up the group of every row.

struct Params {
  M: u32,     // rows of x and y in this dispatch (= MR)
  K: u32,     // input features (sorted order)
  NV: u32,    // columns of this slice / 4
  YN: u32,    // row stride of y in vec4 (N / 4)
  n0: u32,    // first column of this slice
  gs: u32,    // group size in sorted order, or 0: the group of row k is aux[gtab + k]
  gtab: u32,  // offset of the group table in aux
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> qw: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> sz: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> aux: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<vec4<f32>>;

const MAGIC: u32 = 0x4B000000u; // 2^23 as f32 bits; OR-ing a code < 2^23 gives 2^23 + code
const MAGICF: f32 = 8388608.0;
const MASK: u32 = (1u << BITS) - 1u;

var<workgroup> red: array<vec4<f32>, 256>;

fn grp(k: u32) -> u32 {
  if (P.gs != 0u) {
    return k / P.gs;
  }
  return aux[P.gtab + k];
}

// Scales (.s) and zero points (.z) of one group for 4 columns: f16 pairs (scale, zero) in u32.
struct SZ {
  s: vec4<f32>,
  z: vec4<f32>,
}

fn load_sz(g: u32, col4: u32) -> SZ {
  let u = sz[g * P.NV + col4];
  let a = unpack2x16float(u.x);
  let b = unpack2x16float(u.y);
  let c = unpack2x16float(u.z);
  let d = unpack2x16float(u.w);
  return SZ(vec4<f32>(a.x, b.x, c.x, d.x), vec4<f32>(a.y, b.y, c.y, d.y));
}

// The codes of chunk-local row j (0..31) of chunk c for 4 columns.
fn codes_at(c: u32, j: u32, col4: u32) -> vec4<u32> {
  if (BITS == 3u) {
    let lo = qw[(c * 3u + j / 16u) * P.NV + col4];
    let hi = qw[(c * 3u + 2u) * P.NV + col4];
    return ((lo >> vec4<u32>(2u * (j % 16u))) & vec4<u32>(3u)) |
      (((hi >> vec4<u32>(j)) & vec4<u32>(1u)) << vec4<u32>(2u));
  }
  let per = 32u / BITS;
  let w = qw[(c * BITS + j / per) * P.NV + col4];
  return (w >> vec4<u32>((j % per) * BITS)) & vec4<u32>(MASK);
}

// Code t of a word (t counts codes of the word; hi is the 3-bit high-bit word, i the word index).
fn code(w: vec4<u32>, hi: vec4<u32>, i: u32, t: u32) -> vec4<u32> {
  if (BITS == 3u) {
    return ((w >> vec4<u32>(2u * t)) & vec4<u32>(3u)) |
      (((hi >> vec4<u32>(i * 16u + t)) & vec4<u32>(1u)) << vec4<u32>(2u));
  }
  return (w >> vec4<u32>(t * BITS)) & vec4<u32>(MASK);
}

fn xrow(m: u32) -> u32 {
  return m * (P.K / 4u);
}

@compute @workgroup_size(WX, WY)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let tx = lid.x;
  let ty = lid.y;
  let col4 = wid.x * WX + tx;
  let valid = col4 < P.NV;
  let C = P.K / 32u;
  var yv: array<vec4<f32>, MR>;
  for (var m = 0u; m < MR; m++) {
    yv[m] = vec4<f32>(0.0);
  }
  if (valid) {
    for (var c = ty; c < C; c += WY) {
      let k0 = c * 32u;
      var g: u32;
      var whole: bool; // the 32 rows are in group g
      if (P.gs != 0u) {
        g = k0 / P.gs;
        whole = k0 + 32u <= (g + 1u) * P.gs;
      } else {
        g = aux[P.gtab + k0];
        whole = aux[P.gtab + k0 + 31u] == g;
      }
      if (whole) {
        let p = load_sz(g, col4);
        let zc = p.z + vec4<f32>(MAGICF);
        var acc: array<vec4<f32>, MR>;
        for (var m = 0u; m < MR; m++) {
          acc[m] = vec4<f32>(0.0);
        }
        var hi = vec4<u32>(0u);
        if (BITS == 3u) {
          hi = qw[(c * 3u + 2u) * P.NV + col4];
        }
        for (var i = 0u; i < WPC; i++) {
          let w = qw[(c * BITS + i) * P.NV + col4];
          for (var t = 0u; t < CPW; t += 4u) {
            let d0 = bitcast<vec4<f32>>(code(w, hi, i, t) | vec4<u32>(MAGIC)) - zc;
            let d1 = bitcast<vec4<f32>>(code(w, hi, i, t + 1u) | vec4<u32>(MAGIC)) - zc;
            let d2 = bitcast<vec4<f32>>(code(w, hi, i, t + 2u) | vec4<u32>(MAGIC)) - zc;
            let d3 = bitcast<vec4<f32>>(code(w, hi, i, t + 3u) | vec4<u32>(MAGIC)) - zc;
            let xo = (k0 + i * CPW + t) / 4u;
            for (var m = 0u; m < MR; m++) {
              let xv = x[xrow(m) + xo];
              acc[m] = fma(vec4<f32>(xv.x), d0, acc[m]);
              acc[m] = fma(vec4<f32>(xv.y), d1, acc[m]);
              acc[m] = fma(vec4<f32>(xv.z), d2, acc[m]);
              acc[m] = fma(vec4<f32>(xv.w), d3, acc[m]);
            }
          }
        }
        for (var m = 0u; m < MR; m++) {
          yv[m] = fma(p.s, acc[m], yv[m]);
        }
      } else {
        // A group boundary inside the chunk: the group of every row.
        for (var j = 0u; j < 32u; j++) {
          let k = k0 + j;
          let p = load_sz(grp(k), col4);
          let d = (vec4<f32>(codes_at(c, j, col4)) - p.z) * p.s;
          for (var m = 0u; m < MR; m++) {
            let xv = x[xrow(m) + k / 4u];
            yv[m] = fma(vec4<f32>(xv[k % 4u]), d, yv[m]);
          }
        }
      }
    }
  }
  // Add the WY partial sums of each column group in workgroup memory, one row at a time.
  let tid = ty * WX + tx;
  for (var m = 0u; m < MR; m++) {
    red[tid] = yv[m];
    workgroupBarrier();
    for (var s = WY / 2u; s > 0u; s >>= 1u) {
      if (ty < s) {
        red[tid] = red[tid] + red[tid + s * WX];
      }
      workgroupBarrier();
    }
    if (ty == 0u && valid) {
      let n = P.n0 + col4 * 4u;
      let b = vec4<f32>(
        bitcast<f32>(aux[n]),
        bitcast<f32>(aux[n + 1u]),
        bitcast<f32>(aux[n + 2u]),
        bitcast<f32>(aux[n + 3u]),
      );
      y[m * P.YN + n / 4u] = red[tx] + b;
    }
  }
}
