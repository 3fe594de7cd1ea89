//! The paper's evaluation on BAPPS (Berkeley-Adobe Perceptual Patch Similarity): 2AFC
//! and JND scores, the L2/SSIM baselines, and training new linear heads, each computed as
//! the reference's `lpips/trainer.py` and its repository's scripts compute them.

mod baseline;
mod batches;
mod dataset;
mod eval;
mod image;
mod lab;
mod resample;
mod score;
mod ssim;
mod train;

pub use baseline::{Colorspace, dssim, l2};
pub use dataset::{JndSet, TwoAfcSet, find_2afc_sets, find_jnd_sets};
pub use eval::{JndResult, LOAD_SIZE, Metric, TwoAfcResult, score_2afc, score_jnd};
pub use image::{load_patch, read_judgement};
pub use score::{jnd_map, two_afc_score, two_afc_scores, voc_ap};
pub use train::{EpochStats, StepProgress, TrainConfig, TrainMode, Trainer};
