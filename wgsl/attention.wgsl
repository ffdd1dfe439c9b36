// Causal attention with grouped KV heads and an online softmax (any context length).
// One workgroup of AW threads per (key split s, query head h, new token t): it walks the keys
// [s·chunk, min(past + t + 1, (s+1)·chunk)) in blocks of AW, one key per thread for the score,
// then each thread accumulates its own output dims (d = tid + AW·i, D ≤ MAXD).
// With nsplit = 1 it writes the normalized output; otherwise the partial (m, l, acc[D]) of
// its split, which attention_combine.wgsl merges.
// Bindings: 1 q [T, Hq·D], 2 k cache (read as vec4), 3 v cache, 4 out.

struct Params {
  T: u32,
  Hq: u32,
  Hkv: u32,
  D: u32,
  past: u32,
  ldq: u32,      // Hq·D
  ldkv: u32,     // Hkv·D
  chunk: u32,    // keys per split (a multiple of AW)
  nsplit: u32,
  scale: f32,    // 1/sqrt(D)
  aligned: u32,  // D % 4 == 0 (vec4 key loads)
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> Kc: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> Vc: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;

const AW: u32 = 64u;
const MAXD: u32 = 256u;
const NEG: f32 = -3.0e38;

var<workgroup> qs: array<vec4<f32>, 64>;  // MAXD / 4, pre-scaled
var<workgroup> sc: array<f32, 64>;
var<workgroup> pr: array<f32, 64>;

fn k_at(e: u32) -> f32 {
  return Kc[e >> 2u][e & 3u];
}

@compute @workgroup_size(64)
fn attend(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let s = wid.x;
  let h = wid.y;
  let t = wid.z;
  let D = P.D;
  let koff = (h / (P.Hq / P.Hkv)) * D;
  for (var d = tid; d < MAXD; d += AW) {
    var v = 0.0;
    if (d < D) {
      v = Q[t * P.ldq + h * D + d] * P.scale;
    }
    qs[d >> 2u][d & 3u] = v;
  }
  workgroupBarrier();
  let len = P.past + t + 1u;
  let beg = s * P.chunk;
  let end = min(len, beg + P.chunk);
  var m = NEG;
  var l = 0.0;
  var acc: array<f32, 4>;
  for (var kb = beg; kb < end; kb += AW) {
    let key = kb + tid;
    var score = NEG;
    if (key < end) {
      let base = key * P.ldkv + koff;
      var sum = 0.0;
      if (P.aligned != 0u) {
        let b4 = base >> 2u;
        for (var i = 0u; i < D / 4u; i++) {
          sum += dot(qs[i], Kc[b4 + i]);
        }
      } else {
        for (var i = 0u; i < D; i++) {
          sum += qs[i >> 2u][i & 3u] * k_at(base + i);
        }
      }
      score = sum;
    }
    sc[tid] = score;
    workgroupBarrier();
    let nb = min(AW, end - kb);
    var bmax = m;
    for (var j = 0u; j < nb; j++) {
      bmax = max(bmax, sc[j]);
    }
    pr[tid] = exp(score - bmax);
    workgroupBarrier();
    let corr = exp(m - bmax);
    var psum = 0.0;
    for (var j = 0u; j < nb; j++) {
      psum += pr[j];
    }
    l = l * corr + psum;
    for (var i = 0u; i < 4u; i++) {
      let d = tid + AW * i;
      if (d < D) {
        var a = acc[i] * corr;
        var vo = kb * P.ldkv + koff + d;
        for (var j = 0u; j < nb; j++) {
          a += pr[j] * Vc[vo];
          vo += P.ldkv;
        }
        acc[i] = a;
      }
    }
    m = bmax;
    workgroupBarrier();
  }
  if (P.nsplit == 1u) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var i = 0u; i < 4u; i++) {
      let d = tid + AW * i;
      if (d < D) {
        O[t * P.ldq + h * D + d] = acc[i] * inv;
      }
    }
  } else {
    let pb = ((t * P.Hq + h) * P.nsplit + s) * (D + 2u);
    if (tid == 0u) {
      O[pb] = m;
      O[pb + 1u] = l;
    }
    for (var i = 0u; i < 4u; i++) {
      let d = tid + AW * i;
      if (d < D) {
        O[pb + 2u + d] = acc[i];
      }
    }
  }
}
