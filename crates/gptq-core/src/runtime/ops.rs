// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Data movement: embedding lookup and strided 2-D block copies (splitting
//! fused QKV outputs, storing K/V into the cache, exchanging Worker halves).

use super::matmul::Weights;
use super::{need, size, KernelError};

/// Gathers rows `ids` of an embedding table `[rows, d]` (any [`Weights`]
/// dtype) into `out [ids.len(), d]` as f32.
///
/// # Errors
/// [`KernelError`] when an id is `>= rows` (naming it), the table is shorter
/// than `rows * d`, or `out` is too short.
///
/// # Examples
/// ```
/// use gptq_core::runtime::{ops::embed, Weights};
/// let table = [0.0f32, 1.0, 2.0, 3.0]; // [2, 2]
/// let mut out = [0f32; 2];
/// embed(Weights::F32(&table), 2, 2, &[1], &mut out).unwrap();
/// assert_eq!(out, [2.0, 3.0]);
/// ```
pub fn embed(
    table: Weights<'_>,
    rows: usize,
    d: usize,
    ids: &[u32],
    out: &mut [f32],
) -> Result<(), KernelError> {
    need(
        "embed table [rows, d]",
        table.len(),
        size("embed table", &[rows, d])?,
    )?;
    need(
        "embed out [ids, d]",
        out.len(),
        size("embed out", &[ids.len(), d])?,
    )?;
    for (t, &id) in ids.iter().enumerate() {
        let id = id as usize;
        if id >= rows {
            return Err(KernelError(format!(
                "embed: token id {id} at position {t} is outside the vocabulary of {rows} rows"
            )));
        }
        table.widen_into(id * d, &mut out[t * d..(t + 1) * d]);
    }
    Ok(())
}

/// Copies a `rows × cols` block: `dst[dst_off + r*dst_stride + c] =
/// src[src_off + r*src_stride + c]`.
///
/// # Errors
/// [`KernelError`] when the block does not fit in `src` or `dst`.
///
/// # Examples
/// ```
/// use gptq_core::runtime::ops::copy_2d;
/// // take the middle third (K) of a fused [T=2, 3*E=6] QKV output, E = 2
/// let qkv = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0];
/// let mut k = [0f32; 4];
/// copy_2d(&qkv, 2, 6, &mut k, 0, 2, 2, 2).unwrap();
/// assert_eq!(k, [2.0, 3.0, 8.0, 9.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn copy_2d(
    src: &[f32],
    src_off: usize,
    src_stride: usize,
    dst: &mut [f32],
    dst_off: usize,
    dst_stride: usize,
    rows: usize,
    cols: usize,
) -> Result<(), KernelError> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let end = |off: usize, stride: usize, what: &str| -> Result<usize, KernelError> {
        size(what, &[rows - 1, stride])?
            .checked_add(off)
            .and_then(|v| v.checked_add(cols))
            .ok_or_else(|| KernelError(format!("{what}: block end overflows")))
    };
    need(
        "copy_2d src",
        src.len(),
        end(src_off, src_stride, "copy_2d src")?,
    )?;
    need(
        "copy_2d dst",
        dst.len(),
        end(dst_off, dst_stride, "copy_2d dst")?,
    )?;
    if src_stride == cols && dst_stride == cols {
        let n = rows * cols;
        dst[dst_off..dst_off + n].copy_from_slice(&src[src_off..src_off + n]);
        return Ok(());
    }
    for r in 0..rows {
        let s = src_off + r * src_stride;
        let d = dst_off + r * dst_stride;
        dst[d..d + cols].copy_from_slice(&src[s..s + cols]);
    }
    Ok(())
}
