//! Times one job for `scripts/bench_side_by_side.py`, which runs the reference package on
//! the same job in its own process and alternates the two:
//!
//! `cargo run --release --example timing -- JOB NET SIZE BATCH SECONDS THREADS TRUNK`
//!
//! JOB is `pairs` (`distances` on BATCH pairs), `triplets` (BATCH 2AFC triplets:
//! reference, p0, p1; each image through the trunk once) or `load` (model construction
//! from TRUNK). Prints one JSON line: every run's seconds and the process's peak resident
//! memory (VmHWM) in KiB. LPIPS_BENCH_DEVICE (`cpu`, `cuda`, `cuda:N`) and
//! LPIPS_BENCH_PRECISION (`f32`, `f16`, `bf16`) choose where and how;
//! LPIPS_BENCH_WINOGRAD=off turns the Winograd convolutions off. `timing clock`
//! prints the core clock measured with a chain of dependent additions (one per cycle),
//! for the peak-FLOP/s estimate.
// Tests, benches and examples may panic: the library denies tch's panicking methods
// (clippy.toml), not code built on it.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use lpips::weights::TrunkWeights;
use lpips::{InputRange, Lpips, Net, Precision, Ranged, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("clock") {
        println!("{}", serde_json::json!({ "ghz": clock_ghz() }));
        return Ok(());
    }
    let [job, net, size, batch, seconds, threads, trunk] = args.as_slice() else {
        return Err("usage: timing JOB NET SIZE BATCH SECONDS THREADS TRUNK".into());
    };
    let net: Net = net.parse()?;
    let (size, batch): (i64, i64) = (size.parse()?, batch.parse()?);
    let seconds: f64 = seconds.parse()?;
    tch::set_num_threads(threads.parse()?);
    tch::manual_seed(0);
    // scripts/gpu_check.sh runs the same jobs on a GPU, and in half precision.
    let device =
        lpips::runtime::parse_device(&std::env::var("LPIPS_BENCH_DEVICE").unwrap_or("cpu".into()))?;
    let precision: Precision = std::env::var("LPIPS_BENCH_PRECISION")
        .unwrap_or("f32".into())
        .parse()?;
    let build = || {
        Lpips::builder()
            .net(net)
            .trunk(TrunkWeights::File(trunk.into()))
            .device(device)
            .precision(precision)
            .winograd(std::env::var("LPIPS_BENCH_WINOGRAD").as_deref() != Ok("off"))
            .build()
    };
    let model = build()?;
    let input = || Tensor::rand([batch, 3, size, size], (tch::Kind::Float, device)) * 2.0 - 1.0;
    let (a, b, c) = (input(), input(), input());
    let mut run: Box<dyn FnMut() -> Result<(), lpips::LpipsError>> = match job.as_str() {
        "pairs" => Box::new(|| model.distances(&a, &b).map(|_| ())),
        "triplets" => Box::new(|| {
            let _guard = tch::no_grad_guard();
            let all = Tensor::cat(&[&a, &b, &c], 0);
            let f = model.features(Ranged(&all, InputRange::MinusOneToOne))?;
            let r = f.narrow(0, batch)?;
            let d0 = model.compare_features(&r, &f.narrow(batch, batch)?, false)?;
            let d1 = model.compare_features(&r, &f.narrow(2 * batch, batch)?, false)?;
            // Values to the host, as a caller scoring triplets needs them.
            let _ = (
                Vec::<f32>::try_from(d0.flatten(0, -1))?,
                Vec::<f32>::try_from(d1.flatten(0, -1))?,
            );
            Ok(())
        }),
        "load" => Box::new(|| build().map(|_| ())),
        other => return Err(format!("unknown job {other}").into()),
    };
    run()?;
    run()?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        run()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kib: Option<u64> = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    println!(
        "{}",
        serde_json::json!({"times": times, "peak_rss_kib": peak_kib})
    );
    Ok(())
}

/// Cycles per second of one core, from a chain of dependent additions (one cycle each).
#[cfg(target_arch = "x86_64")]
fn clock_ghz() -> Option<f64> {
    let rounds: u64 = 200_000_000;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        // SAFETY: register arithmetic only, no memory access.
        unsafe {
            std::arch::asm!(
                "2:",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "sub {n}, 1",
                "jnz 2b",
                n = inout(reg) rounds => _,
                x = inout(reg) 0u64 => _,
                options(nomem, nostack),
            );
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    Some(8.0 * rounds as f64 / best / 1e9)
}

#[cfg(not(target_arch = "x86_64"))]
fn clock_ghz() -> Option<f64> {
    None
}
