//! Compares a reference image with others: `cargo run --example compare -- REF IMG... [--trunk FILE]`.
//! The model is built once and the reference decoded once.
// Tests, benches and examples may panic: the library denies tch's panicking methods
// (clippy.toml), not code built on it.
#![allow(clippy::disallowed_methods)]

use lpips::Lpips;
use lpips::weights::TrunkWeights;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let trunk = match args.iter().position(|a| a == "--trunk") {
        Some(i) if i + 1 < args.len() => {
            let path = args.remove(i + 1);
            args.remove(i);
            TrunkWeights::File(path.into())
        }
        _ => TrunkWeights::Auto,
    };
    let (reference, others) = args
        .split_first()
        .ok_or("usage: compare REF IMG... [--trunk FILE]")?;
    let model = Lpips::builder().trunk(trunk).build()?;
    let reference = lpips::load_image(reference)?;
    for path in others {
        let d = model.distance(&reference, &lpips::load_image(path)?)?;
        println!("{path}\t{d:.6}");
    }
    Ok(())
}
