//! wasm-bindgen surface of gptq-core.
