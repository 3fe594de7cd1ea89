//! Model construction from weight files: safetensors, a whole torchvision-sized AlexNet
//! state dict in torch's zip format (233 MB, classifier included), and a legacy-format
//! VGG16 trunk. Uses the files `make oracle` writes; missing ones are skipped, loudly.
// Tests, benches and examples may panic: the library denies tch's panicking methods
// (clippy.toml), not code built on it.
#![allow(clippy::disallowed_methods)]

use criterion::{Criterion, criterion_group, criterion_main};
use lpips::{Lpips, Net};

fn loading(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    let oracle = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle");
    for (name, net, file) in [
        ("alex_safetensors", Net::Alex, "trunk_alex.safetensors"),
        ("alex_full_zip_233MB", Net::Alex, "ckpt_alex_full_zip.pth"),
        ("vgg_legacy", Net::Vgg, "ckpt_vgg_legacy.pth"),
    ] {
        let path = oracle.join(file);
        if !path.is_file() {
            eprintln!(
                "{} missing (run `make oracle`): skipping {name}",
                path.display()
            );
            continue;
        }
        group.bench_function(name, |b| {
            b.iter(|| Lpips::builder().net(net).trunk_file(&path).build().unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, loading);
criterion_main!(benches);
