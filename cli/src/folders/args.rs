//! The options the folder commands share.

use std::path::PathBuf;

use clap::ValueEnum;

use crate::args::{MAX_BATCH, MAX_THREADS, MeasureArgs, ModelArgs, count_in};
use crate::error::CliError;

pub(super) const DEFAULT_EXTS: &str =
    "png,jpg,jpeg,bmp,webp,tif,tiff,gif,tga,ppm,pgm,pnm,qoi,exr,hdr,ico,avif";

#[derive(clap::Args)]
pub struct FolderArgs {
    #[command(flatten)]
    pub(super) model: ModelArgs,
    #[command(flatten)]
    pub(super) measure: MeasureArgs,
    /// Images per trunk pass (1 to 4096); also the most decoded images held at a time.
    #[arg(long, default_value_t = 16, value_parser = count_in(MAX_BATCH))]
    pub(super) batch_size: usize,
    /// Descend into sub-folders (symlinked folders are followed once; loops are skipped).
    #[arg(long, short)]
    pub(super) recursive: bool,
    /// File extensions to take, comma-separated (case-insensitive).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_EXTS)]
    pub(super) ext: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub(super) format: ListFormat,
    /// Write the output to this file (atomically) instead of stdout. Finished rows are
    /// kept meanwhile in OUT.partial.jsonl, which `--resume` continues from.
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Continue an interrupted run from OUT.partial.jsonl (needs --out): only the pairs
    /// missing from it (or failed in it) are measured.
    #[arg(long, requires = "out")]
    pub(super) resume: bool,
    /// Write a distance map per pair into this folder (`pair_NNNNNN.png` or `.npy`).
    #[arg(long)]
    pub(super) spatial_dir: Option<PathBuf>,
    /// Format of the maps in --spatial-dir.
    #[arg(long, value_enum, default_value_t = SpatialFormat::Png)]
    pub(super) spatial_format: SpatialFormat,
    /// Only this part of the pairs: I/N (1 <= I <= N) takes every pair whose index is
    /// I - 1 modulo N, so N runs together cover every pair exactly once.
    #[arg(long, value_parser = parse_shard)]
    pub(super) shard: Option<(usize, usize)>,
    /// Decoding threads, 1 to 1024 (default: all cores).
    #[arg(long, value_parser = count_in(MAX_THREADS))]
    pub(super) threads: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    pub(super) quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Text,
    Csv,
    Json,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpatialFormat {
    Png,
    Npy,
}

impl SpatialFormat {
    /// The file pair `index`'s map is written to in `dir`.
    pub(super) fn path(self, dir: &std::path::Path, index: usize) -> std::path::PathBuf {
        match self {
            SpatialFormat::Png => dir.join(format!("pair_{index:06}.png")),
            SpatialFormat::Npy => dir.join(format!("pair_{index:06}.npy")),
        }
    }
}

fn parse_shard(s: &str) -> Result<(usize, usize), CliError> {
    let parsed = s
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
    match parsed {
        Some((i, n)) if 1 <= i && i <= n => Ok((i, n)),
        _ => Err(CliError::Usage(format!(
            "`{s}`: expected I/N with 1 <= I <= N, e.g. 2/8"
        ))),
    }
}
