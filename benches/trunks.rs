//! Each trunk at 64x64 and 256x256, batch 1 and 8: `Lpips::distances` on random
//! inputs in [-1, 1].
//! Threads: `LPIPS_BENCH_THREADS` (default: all cores); `scripts/bench_side_by_side.py`
//! times the reference package the same way and prints both.
// Tests, benches and examples may panic: the library denies tch's panicking methods
// (clippy.toml), not code built on it.
#![allow(clippy::disallowed_methods)]

use criterion::{Criterion, criterion_group, criterion_main};
use lpips::weights::TrunkWeights;
use lpips::{Device, InputRange, Lpips, Net, Ranged, Tensor};

fn threads() -> i32 {
    std::env::var("LPIPS_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as i32))
}

/// The oracle's seeded torchvision-initialised trunk, which `scripts/bench_side_by_side.py`
/// loads into the reference too: weights change speed (denormals), so both use the same.
/// Falls back to a random trunk when the oracle has not been generated.
fn trunk(net: Net) -> TrunkWeights {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/oracle/trunk_{}.safetensors", net.name()));
    if path.is_file() {
        TrunkWeights::File(path)
    } else {
        eprintln!(
            "{} missing (run `make oracle`): random trunk",
            path.display()
        );
        TrunkWeights::RandomInit
    }
}

fn trunks(c: &mut Criterion) {
    tch::set_num_threads(threads());
    tch::manual_seed(0);
    let mut group = c.benchmark_group("lpips");
    group.sample_size(10);
    for net in Net::ALL {
        let model = Lpips::builder().net(net).trunk(trunk(net)).build().unwrap();
        for size in [64, 256] {
            for batch in [1, 8] {
                let input = || {
                    Tensor::rand([batch, 3, size, size], (tch::Kind::Float, Device::Cpu)) * 2.0
                        - 1.0
                };
                let (a, b) = (input(), input());
                group.bench_function(format!("{net}_{size}_b{batch}"), |bench| {
                    bench.iter(|| model.distances(&a, &b).unwrap())
                });
            }
        }
    }
    group.finish();
}

/// 2AFC triplets (reference, p0, p1) at BAPPS's 64x64: each image through the trunk once,
/// then the two distances, as `lpips eval 2afc` computes them.
fn triplets(c: &mut Criterion) {
    tch::set_num_threads(threads());
    tch::manual_seed(0);
    let mut group = c.benchmark_group("triplets");
    group.sample_size(10);
    for (net, batch) in [(Net::Alex, 50), (Net::Squeeze, 50), (Net::Vgg, 8)] {
        let model = Lpips::builder().net(net).trunk(trunk(net)).build().unwrap();
        let images =
            Tensor::rand([3 * batch, 3, 64, 64], (tch::Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        group.bench_function(format!("{net}_64_b{batch}"), |bench| {
            bench.iter(|| {
                let _guard = tch::no_grad_guard();
                let f = model
                    .features(Ranged(&images, InputRange::MinusOneToOne))
                    .unwrap();
                let r = f.narrow(0, batch).unwrap();
                let d0 = model.compare_features(&r, &f.narrow(batch, batch).unwrap(), false);
                let d1 = model.compare_features(&r, &f.narrow(2 * batch, batch).unwrap(), false);
                (d0.unwrap(), d1.unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, trunks, triplets);
criterion_main!(benches);
