//! The reference's `lpips_loss.py` demo in Rust: starting from one image, optimise its
//! pixels with Adam so that its LPIPS distance to a target image falls; prints the loss
//! every `--report` steps and writes the result.
//!
//! ```sh
//! cargo run --release --example optimize -- assets/ex_ref.png assets/ex_p1.png --out optimized.png
//! ```
// Tests, benches and examples may panic: the library denies tch's panicking methods
// (clippy.toml), not code built on it.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use clap::Parser;
use image::RgbImage;
use lpips::weights::TrunkWeights;
use lpips::{Lpips, Net, Tensor};
use tch::nn::{self, OptimizerConfig};

#[derive(Parser)]
struct Args {
    /// The target image.
    target: PathBuf,
    /// The starting image (same size).
    start: PathBuf,
    /// Trunk weights (.pth or .safetensors); default: the hub cache, else a download.
    #[arg(long)]
    trunk: Option<PathBuf>,
    /// Where to write the optimised image.
    #[arg(long, default_value = "optimized.png")]
    out: PathBuf,
    /// Trunk network.
    #[arg(long, default_value = "alex")]
    net: String,
    /// Optimisation steps.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Adam's learning rate (the reference's demo uses 1e-3).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Print the loss every this many steps.
    #[arg(long, default_value_t = 10)]
    report: usize,
}

fn to_image(x: &Tensor) -> RgbImage {
    let (h, w) = (x.size()[2], x.size()[3]);
    let bytes = ((x.detach().squeeze_dim(0).permute([1, 2, 0]) + 1.0) * 127.5)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(tch::Kind::Uint8)
        .contiguous()
        .flatten(0, -1);
    RgbImage::from_raw(
        w as u32,
        h as u32,
        Vec::<u8>::try_from(bytes).expect("u8 pixels"),
    )
    .expect("H x W x 3 bytes")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let net: Net = args.net.parse()?;
    let trunk = args.trunk.map_or(TrunkWeights::Auto, TrunkWeights::File);
    let loss_fn = Lpips::builder().net(net).trunk(trunk).build()?;
    let target = lpips::image_to_tensor(&lpips::load_image(&args.target)?)?;
    let start = lpips::image_to_tensor(&lpips::load_image(&args.start)?)?;
    if target.size() != start.size() {
        return Err(format!("sizes differ: {:?} vs {:?}", target.size(), start.size()).into());
    }

    // The image is the only trainable variable; the model's weights are frozen.
    let vs = nn::VarStore::new(lpips::Device::Cpu);
    let mut image = vs.root().var_copy("image", &start);
    let mut adam = nn::Adam {
        beta1: 0.9,
        beta2: 0.999,
        ..Default::default()
    }
    .build(&vs, args.lr)?;
    let mut first = None;
    let mut last = f64::NAN;
    for step in 0..=args.steps {
        let loss = loss_fn.forward(&image, &target)?.sum(tch::Kind::Float);
        last = loss.double_value(&[]);
        first.get_or_insert(last);
        if step % args.report.max(1) == 0 || step == args.steps {
            println!("iter {step} loss {last:.6}");
        }
        if step == args.steps {
            break;
        }
        adam.zero_grad();
        loss.backward();
        adam.step();
        tch::no_grad(|| {
            let _ = image.clamp_(-1.0, 1.0);
        });
    }
    to_image(&image).save(&args.out)?;
    println!("wrote {}", args.out.display());
    let first = first.unwrap_or(f64::NAN);
    if last.is_nan() || last >= first {
        return Err(format!("the loss did not fall: {first} -> {last}").into());
    }
    Ok(())
}
