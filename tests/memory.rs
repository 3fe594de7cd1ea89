//! Repeated loss/backward steps do not grow memory: no graph or gradient is retained from
//! one step to the next. Alone in its own test binary, so that the process's resident
//! memory reflects this test only.
// Tests, benches and examples may panic: the library denies tch's panicking methods
// (clippy.toml), not code built on it.
#![allow(clippy::disallowed_methods)]

#[path = "library/common.rs"]
mod common;

use lpips::{Lin, Net};
use tch::Kind;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[test]
fn repeated_steps_do_not_grow_memory() {
    let oracle = common::read_tensors("outputs_alex.safetensors");
    let m = common::model(Net::Alex, Lin::V0_1);
    let x = oracle["in0"].copy().set_requires_grad(true);
    let step = || {
        let loss = m.forward(&x, &oracle["in1"]).unwrap().mean(Kind::Float);
        loss.backward();
        tch::no_grad(|| {
            let _ = x.grad().zero_();
        });
        loss.double_value(&[])
    };
    for _ in 0..20 {
        step();
    }
    let before = resident_bytes();
    let mut last = 0.0;
    for _ in 0..200 {
        last = step();
    }
    let after = resident_bytes();
    assert!(last.is_finite());
    let growth = after.saturating_sub(before);
    eprintln!("resident memory: {before} -> {after} bytes over 200 steps");
    // One step's graph holds a few MB here; 200 retained graphs would hold hundreds.
    assert!(
        growth < 32 << 20,
        "memory grew by {growth} bytes over 200 steps"
    );
}
