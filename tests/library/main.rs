//! The library's integration tests, in one binary (each test binary links libtorch, so
//! one binary instead of thirteen saves most of the link time). `tests/memory.rs` stays
//! apart: it reads the process's resident size, which other tests would disturb.
// Tests, benches and examples may panic: the library denies tch's panicking methods
// (clippy.toml), not code built on it.
#![allow(clippy::disallowed_methods)]

mod common;

mod api_gaps;
mod bapps_metrics;
mod bapps_sizes;
mod bapps_train;
mod batches;
mod checkpoint;
#[cfg(feature = "cuda-tests")]
mod cuda;
mod engine;
mod errors;
mod harness;
mod heads;
mod images;
mod inputs;
mod loss;
mod masks;
mod model_file;
mod perceptual;
mod precision;
mod protocols;
mod reference;
mod scripts;
mod stlpips;
mod threads;
mod tiling;
