// Copyright 2026 the GPTQ toolkit authors. MIT license.
//! Errors of the GPTQ solver. Every message says what is wrong and how to fix it.

use core::fmt;

/// A failure of the solver, with enough detail for a user-facing message.
#[derive(Clone, Debug, PartialEq)]
pub enum GptqError {
    /// A buffer has the wrong length for the declared shape.
    Shape(String),
    /// A NaN or ±Inf in an input. `tensor` is `"H"`, `"W"` or `"X"`.
    NonFinite {
        /// Which input (`"H"`, `"W"` or `"X"`).
        tensor: &'static str,
        /// Row of the first bad value.
        row: usize,
        /// Column of the first bad value.
        col: usize,
        /// The bad value.
        value: f32,
    },
    /// Cholesky of the damped Hessian failed for every damping tried.
    NotPositiveDefinite {
        /// The `damp_percent` values tried, in order.
        damp_tried: Vec<f32>,
        /// Index (in processing order) of the failing pivot at the last try.
        pivot: usize,
    },
    /// An invalid setting.
    Config(String),
}

impl fmt::Display for GptqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GptqError::Shape(s) => write!(f, "bad shape: {s}"),
            GptqError::NonFinite { tensor, row, col, value } => write!(
                f,
                "{tensor}[{row}, {col}] = {value} is not finite; {}",
                if *tensor == "H" {
                    "the calibration activations overflowed or contain NaN: check the calibration data and run the layer in fp32"
                } else if *tensor == "X" {
                    "the calibration activations contain NaN/Inf: check the calibration data and run the layer in fp32"
                } else {
                    "the layer weight contains NaN/Inf: the checkpoint is corrupt or was saved after a diverged training step"
                }
            ),
            GptqError::NotPositiveDefinite { damp_tried, pivot } => write!(
                f,
                "the damped Hessian is not positive definite (Cholesky failed at pivot {pivot}) with damp_percent {damp_tried:?}; \
                 raise damp_percent (e.g. 0.1), enable damp_auto_increment, or use more/longer calibration samples"
            ),
            GptqError::Config(s) => write!(f, "invalid configuration: {s}"),
        }
    }
}

impl std::error::Error for GptqError {}

/// Returns the first non-finite value of a row-major `rows×cols` buffer as an error.
pub(crate) fn check_finite(
    tensor: &'static str,
    data: &[f32],
    cols: usize,
) -> Result<(), GptqError> {
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(GptqError::NonFinite {
            tensor,
            row: i / cols.max(1),
            col: i % cols.max(1),
            value: data[i],
        });
    }
    Ok(())
}
