//! The argument types that several commands share: the model options
//! ([`model::ModelArgs`]), how a pair is measured ([`measure::MeasureArgs`]), the output
//! format and the counts' ranges. Each command's own options live with the command.

pub(crate) mod measure;
pub(crate) mod model;

use clap::ValueEnum;
use clap::builder::RangedU64ValueParser;

pub(crate) use measure::{MaskNames, MeasureArgs};
pub(crate) use model::{LinArg, ModelArgs, NetParser};

/// The output format of the commands that print one result (`compare`, `info`, `eval`,
/// `weights list`).
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The largest `--batch-size`: far beyond what fits in memory for any useful image size.
pub(crate) const MAX_BATCH: u64 = 4096;
/// The largest `--threads`.
pub(crate) const MAX_THREADS: u64 = 1024;

/// A clap parser for a count in `1..=max`; out-of-range values are refused with the range.
pub(crate) fn count_in(max: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::<usize>::new().range(1..=max)
}
