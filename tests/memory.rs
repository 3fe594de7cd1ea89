//! Memory, in a test binary of its own (the process's resident memory and its address
//! space limit concern these tests only): repeated loss/backward steps do not grow
//! memory, and an image too large for the memory left is an error, never an abort.
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
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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

/// The tests here that limit the process's address space run one at a time, and not
/// beside the one that measures memory.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The process's virtual size now (VmSize), in bytes.
fn virtual_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Runs `f` with the address space limited to what the process maps now plus
/// `headroom` bytes (as `prlimit --as` would), then lifts the limit.
fn with_headroom<T>(headroom: u64, f: impl FnOnce() -> T) -> T {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid pointers; only the soft limit changes.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut old), 0);
        let limited = libc::rlimit {
            rlim_cur: virtual_bytes() + headroom,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &limited), 0);
    }
    let result = f();
    // SAFETY: as above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &old), 0) };
    result
}

/// An image too large for the memory left is an error naming it, never an abort of the
/// process: the decoded pixels' buffer (Rust's allocation, once `vec!`), and the tensor
/// made from an image or a pixel array (once an f32 copy in a `Vec`).
#[test]
fn images_too_large_for_the_memory_left_are_errors() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.png");
    std::fs::write(&huge, common::png_header(13_000, 13_000)).unwrap(); // 507 MB of pixels
    let err = with_headroom(200 << 20, || lpips::load_image(&huge)).unwrap_err();
    assert!(
        matches!(&err, lpips::LpipsError::OutOfMemory { bytes, .. } if *bytes == 507_000_000),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("huge.png") && err.to_string().contains("not enough memory"),
        "{err}"
    );

    // 6000 x 6000 pixels: 108 MB as 8-bit RGB, 432 MB as the f32 tensor.
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::new(6000, 6000));
    let err = with_headroom(200 << 20, || lpips::image_to_tensor(&img)).unwrap_err();
    assert!(err.to_string().contains("memory"), "{err}");
    let pixels = ndarray::Array3::<u8>::zeros((6000, 6000, 3));
    let err = with_headroom(200 << 20, || {
        lpips::ImageInput::to_canonical(
            &lpips::HwcU8(pixels.view()),
            lpips::InputRange::MinusOneToOne,
        )
    })
    .unwrap_err();
    assert!(err.to_string().contains("memory"), "{err}");
    // With the memory there, the same calls work.
    assert_eq!(
        lpips::image_to_tensor(&img).unwrap().size(),
        [1, 3, 6000, 6000]
    );
}
