//! The library's integration tests, in one binary (each test binary links libtorch, so
//! one binary instead of thirteen saves most of the link time). `tests/memory.rs` stays
//! apart: it reads the process's resident size, which other tests would disturb.

mod common;

mod bapps_metrics;
mod bapps_train;
mod batches;
mod checkpoint;
#[cfg(feature = "cuda-tests")]
mod cuda;
mod errors;
mod harness;
mod heads;
mod inputs;
mod loss;
mod masks;
mod precision;
mod protocols;
mod reference;
mod threads;
mod tiling;
