// The GPTQ solver's matrix products (fp32): C = [C +] alpha · A·B on sub-matrices of up to three
// buffers, for the Cholesky trailing update (A22 −= L21·L21ᵀ, lower triangle), the blocked
// triangular inverse, the lazy batch update W[:, i2:] −= Err1 · U[i1:i2, i2:] and the report's
// D·H; plus `rowdot`, per-row partial sums of Y∘D.
//
// gemm: bindings 1, 2, 3 are three distinct buffers (a product that uses fewer binds dummies);
// each operand names its buffer (0, 1, 2), an element offset and a row stride, so operands may
// share a buffer (e.g. the Cholesky update reads and writes one matrix; the regions it writes
// are disjoint from those it reads).
// rowdot: bindings 1 Y [M, n], 2 D [M, n], 3 out [M, chunks] (f32 partial sums of 256 columns).

struct Params {
  m: u32,         // rows of C
  n: u32,         // columns of C
  kd: u32,        // inner size
  a_off: u32,
  lda: u32,
  b_off: u32,
  ldb: u32,
  c_off: u32,
  ldc: u32,
  a_buf: u32,
  b_buf: u32,
  c_buf: u32,
  b_trans: u32,   // 1: B(p, j) = b[j·ldb + p]; 0: B(p, j) = b[p·ldb + j]
  tri: u32,       // 0 full; 1 only C[i][j] with j ≤ i (tiles above the diagonal skipped);
                  // 2 A lower triangular (A[i][p] = 0 for p > i)
  alpha: f32,
  accumulate: u32,  // 1: C += alpha·A·B; 0: C = alpha·A·B
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> B0: array<f32>;
@group(0) @binding(2) var<storage, read_write> B1: array<f32>;
@group(0) @binding(3) var<storage, read_write> B2: array<f32>;

fn ld(buf: u32, i: u32) -> f32 {
  if (buf == 0u) {
    return B0[i];
  }
  if (buf == 1u) {
    return B1[i];
  }
  return B2[i];
}

fn st(buf: u32, i: u32, v: f32) {
  if (buf == 0u) {
    B0[i] = v;
  } else if (buf == 1u) {
    B1[i] = v;
  } else {
    B2[i] = v;
  }
}

fn a_at(i: u32, p: u32) -> f32 {
  if (i < P.m && p < P.kd && (P.tri != 2u || p <= i)) {
    return ld(P.a_buf, P.a_off + i * P.lda + p);
  }
  return 0.0;
}

fn b_at(p: u32, j: u32) -> f32 {
  if (p < P.kd && j < P.n) {
    if (P.b_trans == 1u) {
      return ld(P.b_buf, P.b_off + j * P.ldb + p);
    }
    return ld(P.b_buf, P.b_off + p * P.ldb + j);
  }
  return 0.0;
}

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> As: array<vec4<f32>, 256>;  // [TK][TM / 4]
var<workgroup> Bs: array<vec4<f32>, 256>;  // [TK][TN / 4]

@compute @workgroup_size(16, 16)
fn gemm(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
  let nb = wid.x * TN;
  let mb = wid.y * TM;
  if (P.tri == 1u && nb > mb + TM - 1u) {
    return;  // the whole tile is above the diagonal
  }
  var kend = P.kd;
  if (P.tri == 2u) {
    kend = min(kend, mb + TM);  // A[i][p] = 0 for p > i
  }
  // A tile: thread loads row lr, k offsets lk..lk+3.
  let lr = tid / 4u;
  let lk = (tid % 4u) * 4u;
  // B tile (row-major B): thread loads k row tid/16, columns 4·(tid%16)..+3.
  let bk = tid / 16u;
  let bc = (tid % 16u) * 4u;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < kend; k0 += TK) {
    for (var j = 0u; j < 4u; j++) {
      As[(lk + j) * 16u + lr / 4u][lr % 4u] = a_at(mb + lr, k0 + lk + j);
    }
    if (P.b_trans == 1u) {
      for (var j = 0u; j < 4u; j++) {
        Bs[(lk + j) * 16u + lr / 4u][lr % 4u] = b_at(k0 + lk + j, nb + lr);
      }
    } else {
      Bs[bk * 16u + bc / 4u] = vec4<f32>(b_at(k0 + bk, nb + bc), b_at(k0 + bk, nb + bc + 1u),
                                         b_at(k0 + bk, nb + bc + 2u), b_at(k0 + bk, nb + bc + 3u));
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let av = As[k * 16u + lid.y];
      let bv = Bs[k * 16u + lid.x];
      acc[0] += av.x * bv;
      acc[1] += av.y * bv;
      acc[2] += av.z * bv;
      acc[3] += av.w * bv;
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    let i = mb + lid.y * 4u + r;
    if (i < P.m) {
      for (var c = 0u; c < 4u; c++) {
        let j = nb + lid.x * 4u + c;
        if (j < P.n && (P.tri != 1u || j <= i)) {
          let o = P.c_off + i * P.ldc + j;
          var v = P.alpha * acc[r][c];
          if (P.accumulate == 1u) {
            v = ld(P.c_buf, o) + v;
          }
          st(P.c_buf, o, v);
        }
      }
    }
  }
}

// ---- rowdot: out[r, c] = Σ_{j in chunk c} Y[r, j]·D[r, j], chunks of 256 columns ----

@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> D: array<f32>;
@group(0) @binding(3) var<storage, read_write> Partial: array<f32>;

@compute @workgroup_size(64)
fn rowdot(@builtin(global_invocation_id) g: vec3<u32>) {
  // P.m rows, P.n columns, P.kd chunks per row.
  let idx = g.x;
  if (idx >= P.m * P.kd) {
    return;
  }
  let r = idx / P.kd;
  let c = idx % P.kd;
  let j0 = c * 256u;
  let j1 = min(P.n, j0 + 256u);
  var s = 0.0;
  for (var j = j0; j < j1; j++) {
    s += Y[r * P.n + j] * D[r * P.n + j];
  }
  Partial[idx] = s;
}
