//! Times each 3x3 stride-1 layer shape of the trunks both ways, oneDNN's direct
//! convolution (channels-last, as the trunk runs it) and the Winograd path, for the
//! per-layer choice in `winograd_pays` (docs/benchmarks.md, "Winograd convolution"):
//!
//! `cargo run --release --example conv_layers -- [THREADS] [SECONDS] [CIN,COUT,SIDE,BATCH ...]`
//!
//! Without shapes: every 3x3 layer of the three trunks at 64x64 and 256x256 input,
//! batch 16 (8 pairs: both sides go through the trunk). Prints a Markdown table: the
//! shape, milliseconds per call each way (medians, alternating), effective GFLOP/s
//! (direct convolution's FLOPs / time), the ratio and the trunks' choice.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use lpips::Tensor;
use lpips::internals::{WinogradConv, winograd_pays};
use tch::{Device, Kind};

fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: i32 = args.first().map_or(Ok(2), |s| s.parse())?;
    let seconds: f64 = args.get(1).map_or(Ok(1.0), |s| s.parse())?;
    tch::set_num_threads(threads);
    // As the `lpips` command and the benchmarks run (docs/benchmarks.md, "The allocator").
    lpips::runtime::tune_cpu_allocator();
    let _guard = tch::no_grad_guard();
    let mut shapes: Vec<(i64, i64, i64, i64)> = Vec::new();
    for arg in args.iter().skip(2) {
        let v: Vec<i64> = arg.split(',').map(str::parse).collect::<Result<_, _>>()?;
        shapes.push((v[0], v[1], v[2], v[3]));
    }
    if shapes.is_empty() {
        for batch in [2, 16] {
            // VGG16 at 256 and 64; AlexNet conv3-5 at 256 (15x15) and 64 (3x3);
            // SqueezeNet expand3x3 at 256 (63, 31, 15) and 64 (15, 7, 3).
            for side in [256, 64] {
                let s = |k: i64| side / k;
                shapes.extend([
                    (64, 64, s(1), batch),
                    (64, 128, s(2), batch),
                    (128, 128, s(2), batch),
                    (128, 256, s(4), batch),
                    (256, 256, s(4), batch),
                    (256, 512, s(8), batch),
                    (512, 512, s(8), batch),
                    (512, 512, s(16), batch),
                ]);
            }
            for side in [15, 3] {
                shapes.extend([
                    (192, 384, side, batch),
                    (384, 256, side, batch),
                    (256, 256, side, batch),
                ]);
            }
            for (a, b, c) in [(63, 31, 15), (15, 7, 3)] {
                shapes.extend([
                    (16, 64, a, batch),
                    (32, 128, b, batch),
                    (48, 192, c, batch),
                    (64, 256, c, batch),
                ]);
            }
        }
    }
    println!("threads {threads}");
    println!(
        "| Cin | Cout | map | batch | direct (ms) | Winograd (ms) | direct GFLOP/s | Winograd eff. GFLOP/s | speed-up | chosen |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (cin, cout, side, batch) in shapes {
        let opts = (Kind::Float, Device::Cpu);
        let x = channels_last(&Tensor::randn([batch, cin, side, side], opts));
        let w = Tensor::randn([cout, cin, 3, 3], opts) / (9.0 * cin as f64).sqrt();
        let b = Tensor::randn([cout], opts);
        let wl = channels_last(&w);
        let wino = WinogradConv::new(&w, &b)?;
        let direct = || {
            let _ = x.conv2d(&wl, Some(&b), [1, 1], [1, 1], [1, 1], 1);
        };
        let fast = || {
            let _ = wino.forward(&x).unwrap();
        };
        direct();
        fast();
        let (mut td, mut tw) = (Vec::new(), Vec::new());
        let start = Instant::now();
        while td.len() < 5 || start.elapsed().as_secs_f64() < 2.0 * seconds {
            let t = Instant::now();
            direct();
            td.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            fast();
            tw.push(t.elapsed().as_secs_f64());
        }
        let (td, tw) = (median(td), median(tw));
        let flops = 2.0 * 9.0 * (cin * cout * side * side * batch) as f64;
        println!(
            "| {cin} | {cout} | {side}x{side} | {batch} | {:.2} | {:.2} | {:.0} | {:.0} | {:.2}x | {} |",
            td * 1e3,
            tw * 1e3,
            flops / td / 1e9,
            flops / tw / 1e9,
            td / tw,
            if winograd_pays(batch, cin, cout, side, side) {
                "Winograd"
            } else {
                "direct"
            }
        );
    }
    Ok(())
}
