use std::path::PathBuf;

use crate::config::{Net, Variant};

impl std::fmt::Debug for LpipsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Shorthand for results whose error is [`LpipsError`].
pub type Result<T, E = LpipsError> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate, with the facts needed to fix it.
///
/// The variants come in groups by who is at fault, [`LpipsError::fault`]: the caller's
/// inputs, arguments and files ([`Fault::Input`]); weights and model files
/// ([`Fault::Weights`]); downloads ([`Fault::Download`]); BAPPS data and training runs
/// ([`Fault::Dataset`]); the runtime, libtorch, memory and devices ([`Fault::Runtime`]).
/// Messages name this crate's API for the fix (`LpipsBuilder::trunk_file`,
/// `InputRange::ZeroToOne`, ...); a command line built on it words them for its flags.
///
/// `Debug` prints the same text as `Display`: a `fn main() -> Result<(), LpipsError>`
/// that fails shows the message with its fix, not a struct dump (nor libtorch's C++
/// backtrace); the facts stay reachable through the variants' fields.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum LpipsError {
    // ---- The caller's inputs and arguments (Fault::Input) ----
    /// An input is not `N x 3 x H x W` (or `3 x H x W` for one image); a shape that
    /// looks channels-last (`H x W x 3`) is told how to permute it.
    #[error("{}", bad_shape(which, shape))]
    BadShape {
        /// `"in0"`, `"in1"` or `"input"`.
        which: &'static str,
        /// The shape that was passed, as the caller passed it.
        shape: Vec<i64>,
    },
    /// An input tensor holds values that are not real numbers (complex, bool, quantised).
    #[error("input tensors must hold real numbers (float or integer), not {kind}")]
    InputKind {
        /// The tensor's kind.
        kind: String,
    },
    /// The two images of a pair differ in height or width (and the model does not
    /// [`Resize`](crate::Resize) them).
    #[error("{}", size_mismatch(*a, *b, file_a.as_deref(), file_b.as_deref()))]
    SizeMismatch {
        /// Height and width of the first input.
        a: (i64, i64),
        /// Height and width of the second input.
        b: (i64, i64),
        /// The file the first input was read from, if any.
        file_a: Option<PathBuf>,
        /// The file the second input was read from, if any.
        file_b: Option<PathBuf>,
    },
    /// The two inputs hold batches that cannot be paired (neither has one image and
    /// their counts differ), or two feature sets come from images of different sizes.
    #[error("inputs differ in shape: {a:?} vs {b:?}")]
    ShapeMismatch {
        /// Shape of the first input.
        a: Vec<i64>,
        /// Shape of the second input.
        b: Vec<i64>,
    },
    /// An input has no images in it.
    #[error("input batch is empty (N = 0)")]
    EmptyBatch,
    /// An input is smaller than the trunk accepts.
    #[error(
        "input is {height}x{width} (HxW) but the {net} trunk needs at least {min} pixels on each side"
    )]
    TooSmall {
        /// The trunk.
        net: Net,
        /// Its minimum side in pixels.
        min: i64,
        /// Input height.
        height: i64,
        /// Input width.
        width: i64,
    },
    /// An input's values lie clearly outside its declared range (by more than a tenth of
    /// the range): most often [0, 1] or 0..255 data declared as [-1, 1], or the reverse.
    #[error(
        "input {which} has values in [{min}, {max}] but was declared {declared:?} ({lo} to {hi}); {}",
        range_fix(*declared, *min, *max)
    )]
    OutOfRange {
        /// `"in0"` or `"in1"`.
        which: &'static str,
        /// The declared range.
        declared: crate::config::InputRange,
        /// Lower bound of the declared range.
        lo: f64,
        /// Upper bound of the declared range.
        hi: f64,
        /// The smallest value found.
        min: f64,
        /// The largest value found.
        max: f64,
    },
    /// A single pair was expected but the inputs hold several images.
    #[error("expected one image on each side, got batches of {a} and {b}")]
    NotSingle {
        /// Images on the first side.
        a: i64,
        /// Images on the second side.
        b: i64,
    },
    /// An input holds NaN or infinite values.
    #[error("input {which} holds NaN or infinite values")]
    NonFinite {
        /// `"in0"` or `"in1"`.
        which: &'static str,
    },
    /// A range of images outside the batch was asked for.
    #[error("images {start}..{} asked for, but the batch holds {n}", start + len)]
    OutOfBatch {
        /// First image asked for.
        start: i64,
        /// How many.
        len: i64,
        /// Images in the batch.
        n: i64,
    },
    /// Features computed by one model were given to another whose trunk makes other
    /// features (another net, variant or version): comparing them would mean nothing.
    #[error(
        "these features were computed by the {features} model, but this is the {model} model: \
         compute them with the model that compares them (`Lpips::features`)"
    )]
    FeaturesMismatch {
        /// The model that computed the features.
        features: crate::config::ModelId,
        /// The model they were given to.
        model: crate::config::ModelId,
    },
    /// Two sets of features cannot be compared: one holds features, the other the
    /// images kept for tiled evaluation (they were made by models with other memory
    /// settings).
    #[error(
        "one set of features was computed in one pass and the other kept for tiled \
         evaluation: make both with the same model"
    )]
    MemoryMismatch,
    /// A mask or pixel weights cannot be used.
    #[error("mask: {reason}")]
    Mask {
        /// What is wrong with it.
        reason: String,
    },
    /// An argument given to a function of this crate is outside what it accepts.
    #[error("{argument} = {value}: expected {expected}")]
    InvalidArgument {
        /// The function and argument, e.g. `Lpips::distance_matrix(batch_size)`.
        argument: &'static str,
        /// What was given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// Settings given to the builder that do not go together.
    #[error("settings that do not go together: {reason}")]
    Conflict {
        /// Which, and what to give instead.
        reason: String,
    },
    /// A name given for a setting is not one of its values.
    #[error("unknown {what} `{value}`; expected one of: {expected}")]
    Parse {
        /// The setting.
        what: &'static str,
        /// What was given.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// A model variant that does not exist for this trunk (ST-LPIPS was published for
    /// alex and vgg only).
    #[error("the {variant} variant exists for alex and vgg only, not for {net}")]
    NoSuchVariant {
        /// The trunk asked for.
        net: Net,
        /// The variant asked for.
        variant: Variant,
    },
    /// A training setting ([`crate::bapps::TrainConfig`]) is out of range.
    #[error("TrainConfig: {field} = {value}; expected {expected}")]
    TrainSetting {
        /// The field (or, for a sum that overflows, `epochs + decay_epochs`).
        field: &'static str,
        /// What was given.
        value: String,
        /// What is accepted.
        expected: String,
    },

    // ---- The caller's files, and one pair of a folder run (Fault::Input) ----
    /// An image could not be read or decoded.
    #[error("cannot read image {}: {source}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// Why.
        source: image::ImageError,
    },
    /// An image file is truncated or corrupt (libjpeg's error or warning); nothing
    /// partial is returned unless asked (`ImageReader::accept_damaged`).
    #[error(
        "cannot read image {}: {reason} (a damaged file: refused; \
         `ImageReader::accept_damaged` takes what libjpeg can decode of it)",
        path.display()
    )]
    CorruptImage {
        /// The image file.
        path: PathBuf,
        /// What the decoder found.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An output path names a file the same call reads (by identity: the same name, a
    /// hard link or a symlink to it).
    #[error(
        "{}: is the input {}; writing there would replace it",
        output.display(),
        input.display()
    )]
    OutputIsInput {
        /// The output path.
        output: PathBuf,
        /// The input it is.
        input: PathBuf,
    },
    /// A path given as a file is a folder, FIFO, socket or device.
    #[error("{}: is {kind}, not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// One pair of a folder run ([`crate::engine`]) could not be measured: an image that
    /// cannot be read or is too small, sizes that differ, a trunk pass that failed even
    /// for the image alone, a distance that is not finite, a mask that does not fit.
    /// The other pairs of the run are measured regardless.
    #[error("{reason}")]
    Pair {
        /// What went wrong, naming the file(s) at fault.
        reason: String,
        /// The job's image whose failure (unreadable, too small, a failed trunk pass)
        /// failed this pair; `None` when the pair itself failed.
        image: Option<usize>,
    },

    // ---- Weights and model files (Fault::Weights) ----
    /// A weight file named to the builder cannot be opened (missing, unreadable).
    #[error("cannot open the {role} file {}: {source}. {}", path.display(), role.fix())]
    WeightFileOpen {
        /// Which of the builder's files it is.
        role: WeightRole,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No trunk weights were given, none are in the hub cache and none could be
    /// downloaded.
    #[error("{}", trunk_not_found(*net, searched, reason))]
    TrunkNotFound {
        /// The trunk.
        net: Net,
        /// The files looked for, in order.
        searched: Vec<PathBuf>,
        /// Why no download happened or why it failed.
        reason: String,
    },
    /// No weights of a whole published model (ST-LPIPS) were given, found or downloaded.
    #[error(
        "no weights for {what}: looked for {}; not downloaded: {reason}. Give the file \
         (`LpipsBuilder::trunk_file`), point LPIPS_STLPIPS_PYTHON at a Python \
         environment with stlpips-pytorch installed (`TrunkWeights::PythonEnv`), put {file_name} \
         into the cache folder, or allow the download (network access, LPIPS_OFFLINE unset)",
        looked_for(searched, "no cache folder")
    )]
    ModelNotFound {
        /// The model, e.g. `shift-tolerant alex`.
        what: String,
        /// Its published file name.
        file_name: String,
        /// The files looked for, in order.
        searched: Vec<PathBuf>,
        /// Why no download happened or why it failed.
        reason: String,
    },
    /// A weight source (a file, or the tensors a caller gave) cannot serve the model:
    /// the source is named once here, what is wrong with it is the [`WeightProblem`].
    #[error("{}", problem.describe(source_name))]
    Weights {
        /// The file (its path), or what the tensors are, e.g. `the given tensors`.
        source_name: String,
        /// What is wrong with it.
        problem: WeightProblem,
    },

    // ---- Downloads (Fault::Download) ----
    /// A download failed; nothing was left in the cache.
    #[error("download of {url} failed: {reason}")]
    Download {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A file's SHA-256 is not the published one; a download with it was discarded.
    #[error("SHA-256 mismatch for {what}: expected {expected}, got {found}")]
    DigestMismatch {
        /// The URL or file.
        what: String,
        /// The published digest.
        expected: String,
        /// The digest of what was received.
        found: String,
    },

    // ---- BAPPS data and training runs (Fault::Dataset) ----
    /// A BAPPS folder is not laid out as the reference's loaders expect.
    #[error("dataset {}: {reason}", path.display())]
    Dataset {
        /// The folder (or file) at fault.
        path: PathBuf,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A BAPPS judgement file (`.npy`) does not hold one float in [0, 1].
    #[error("judgement file {}: {reason}", path.display())]
    Judgement {
        /// The `.npy` file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// A training checkpoint cannot be used as asked.
    #[error("checkpoint {}: {reason}", path.display())]
    TrainCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A training run diverged: its loss or a trained weight became NaN or infinite.
    /// The run stops; the checkpoints of earlier epochs are kept.
    #[error("training diverged at epoch {epoch} ({what}): lower TrainConfig::lr (now {lr:e})")]
    TrainingDiverged {
        /// The epoch (1-based).
        epoch: usize,
        /// What was found, e.g. `loss is NaN`.
        what: String,
        /// The run's base learning rate ([`crate::bapps::TrainConfig::lr`]).
        lr: f64,
    },

    // ---- The runtime: libtorch, memory, devices, threads (Fault::Runtime) ----
    /// libtorch reported an error.
    #[error("libtorch: {}", torch_message(&.0.to_string()))]
    Torch(#[from] tch::TchError),
    /// An allocation that grows with an input (an image's pixels, a file's bytes) was
    /// refused: the input is too large for the memory left. The process goes on.
    #[error("{what}: not enough memory ({bytes} bytes could not be allocated)")]
    OutOfMemory {
        /// What needed the memory (e.g. the image file).
        what: String,
        /// How much was asked for.
        bytes: u64,
    },
    /// Not even a tiled evaluation fits in the memory allowed.
    #[error(
        "a {height}x{width} comparison needs at least {needed} bytes even in tiles, but \
         {allowed} bytes are allowed ({why}); allow more (`LpipsBuilder::max_memory`)"
    )]
    MemoryBudget {
        /// Image height.
        height: i64,
        /// Image width.
        width: i64,
        /// Estimated bytes for the smallest tiling.
        needed: u64,
        /// Bytes allowed.
        allowed: u64,
        /// Where the limit comes from.
        why: &'static str,
    },
    /// The requested device cannot be used.
    #[error("device `{device}` is not available: {reason}")]
    DeviceUnavailable {
        /// The device asked for.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Workers ([`crate::workers::with_workers`]) could not be started.
    #[error("cannot start {threads} workers: {reason}")]
    Workers {
        /// How many were asked for.
        threads: usize,
        /// Why not.
        reason: String,
    },
    /// A distance came out NaN or infinite (e.g. weights that overflow): never a result.
    #[error(
        "distance {index} of the batch is not finite (NaN or infinite: overflowing weights or inputs?)"
    )]
    NonFiniteDistance {
        /// Its index in the batch (for a map, the index of the first bad value).
        index: i64,
    },
    /// A check inside this crate failed: a bug here, not in the caller's input.
    #[error("internal error (please report it): {0}")]
    Internal(String),
}

/// Which of the builder's weight files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WeightRole {
    /// The trunk's ImageNet weights ([`LpipsBuilder::trunk_file`](crate::LpipsBuilder::trunk_file),
    /// [`TrunkWeights::File`](crate::weights::TrunkWeights::File)).
    Trunk,
    /// A published whole model, ST-LPIPS's (also given with `trunk_file`).
    PublishedModel,
    /// A whole-model file ([`LpipsBuilder::model_file`](crate::LpipsBuilder::model_file)).
    Model,
    /// A heads file ([`LpipsBuilder::heads_file`](crate::LpipsBuilder::heads_file)).
    Heads,
}

impl WeightRole {
    /// How to point the builder at the right file.
    pub fn fix(self) -> &'static str {
        match self {
            WeightRole::Trunk => {
                "Point `LpipsBuilder::trunk_file` (`TrunkWeights::File`) at the trunk's \
                 weights (torchvision's .pth, or .safetensors with its names), or keep \
                 `TrunkWeights::Auto` to use the torch hub cache (TORCH_HOME)"
            }
            WeightRole::PublishedModel => {
                "Point `LpipsBuilder::trunk_file` at the published ST-LPIPS model file, name \
                 a Python environment with stlpips-pytorch installed \
                 (`TrunkWeights::PythonEnv`, or LPIPS_STLPIPS_PYTHON), or keep \
                 `TrunkWeights::Auto` to find it in the cache or download it"
            }
            WeightRole::Model => {
                "Point `LpipsBuilder::model_file` at a whole `lpips.LPIPS` state dict"
            }
            WeightRole::Heads => {
                "Point `LpipsBuilder::heads_file` at a heads file (`lin{k}.model.1.weight` \
                 tensors), or leave it out for the embedded heads"
            }
        }
    }
}

impl std::fmt::Display for WeightRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WeightRole::Trunk => "trunk weight",
            WeightRole::PublishedModel => "published model",
            WeightRole::Model => "whole-model",
            WeightRole::Heads => "heads",
        })
    }
}

/// What is wrong with a weight source ([`LpipsError::Weights`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WeightProblem {
    /// It holds the trunk of another net (its tensors' shapes fit that one).
    OtherNet {
        /// The net the model was built for.
        net: Net,
        /// The net whose trunk the source holds.
        found: Net,
    },
    /// It holds a torchvision trunk where a whole model (trunk, heads and scaling
    /// layer in one file) is needed: for ST-LPIPS, or as
    /// [`LpipsBuilder::model_file`](crate::LpipsBuilder::model_file).
    NotAWholeModel {
        /// The published whole model's file name (ST-LPIPS), `None` for a
        /// `LpipsBuilder::model_file`.
        published: Option<&'static str>,
    },
    /// It holds a whole `lpips.LPIPS` model (`net.slice*`, `lin*` and scaling tensors)
    /// where a torchvision trunk is read.
    WholeModelAsTrunk,
    /// A whole model's file does not hold exactly the model's tensors.
    ModelKeys {
        /// Tensors the model needs that the file lacks, as `name (shape)`.
        missing: Vec<String>,
        /// Tensors in the file that the model has no place for.
        unexpected: Vec<String>,
    },
    /// A weight the model needs is absent.
    Missing {
        /// The tensor name, in torchvision's naming.
        key: String,
        /// The shape it should have (empty where any shape is read).
        expected: Vec<i64>,
    },
    /// A weight has the wrong shape.
    Shape {
        /// The tensor name.
        key: String,
        /// The shape the model needs.
        expected: Vec<i64>,
        /// The shape found.
        found: Vec<i64>,
    },
    /// A weight is stored in a type that cannot be converted to floats.
    Dtype {
        /// The tensor name.
        key: String,
        /// The stored dtype.
        dtype: String,
    },
    /// A weight holds NaN or infinite values.
    NonFinite {
        /// The tensor name.
        key: String,
    },
    /// The file is corrupt or not what its name says.
    Format {
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint names a Python callable that a state dict never needs; refused
    /// before anything could run.
    ForbiddenGlobal {
        /// The Python global, as `module.name`.
        global: String,
    },
}

impl WeightProblem {
    /// The message, with the source named where the sentence needs it.
    fn describe(&self, source_name: &str) -> String {
        match self {
            WeightProblem::OtherNet { net, found } => format!(
                "{source_name} holds the {found} trunk, but the model is {net}: build the model \
                 with `.net(Net::{found:?})`, or give the {net} trunk's weights \
                 (`LpipsBuilder::trunk_file`)"
            ),
            WeightProblem::NotAWholeModel { published } => {
                not_a_whole_model(source_name, *published)
            }
            WeightProblem::WholeModelAsTrunk => format!(
                "{source_name} holds a whole lpips.LPIPS model (trunk, heads and scaling \
                 layer), not a torchvision trunk: give it with `LpipsBuilder::model_file`"
            ),
            WeightProblem::ModelKeys {
                missing,
                unexpected,
            } => model_keys(source_name, missing, unexpected),
            WeightProblem::Missing { key, expected } if expected.is_empty() => {
                format!("weight `{key}` is missing from {source_name}")
            }
            WeightProblem::Missing { key, expected } => {
                format!("weight `{key}` (shape {expected:?}) is missing from {source_name}")
            }
            WeightProblem::Shape {
                key,
                expected,
                found,
            } => format!(
                "weight `{key}` in {source_name} has shape {found:?}, expected {expected:?}"
            ),
            WeightProblem::Dtype { key, dtype } => {
                format!("weight `{key}` in {source_name} has unsupported dtype {dtype}")
            }
            WeightProblem::NonFinite { key } => {
                format!("weight `{key}` in {source_name} holds NaN or infinite values")
            }
            WeightProblem::Format { reason } => {
                format!("cannot read weights from {source_name}: {reason}")
            }
            WeightProblem::ForbiddenGlobal { global } => format!(
                "refusing to load {source_name}: it names `{global}`, which a state dict \
                 never needs (nothing was executed)"
            ),
        }
    }

    /// This problem in `source_name`, as the crate's error.
    pub fn at(self, source_name: impl Into<String>) -> LpipsError {
        LpipsError::Weights {
            source_name: source_name.into(),
            problem: self,
        }
    }
}

/// The files a weight search looked at, as messages name them (`a and b`), or `none`
/// when there was nowhere to look: for a front end that words
/// [`LpipsError::TrunkNotFound`] and [`LpipsError::ModelNotFound`] its own way.
pub fn looked_for(searched: &[PathBuf], none: &str) -> String {
    if searched.is_empty() {
        return none.to_string();
    }
    searched
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// What stands in the way of searching the torch hub cache.
pub const NO_HUB_CACHE: &str = "no torch hub cache folder (no TORCH_HOME, XDG_CACHE_HOME or HOME)";

fn trunk_not_found(net: Net, searched: &[PathBuf], reason: &str) -> String {
    let file = crate::trunk::PublishedFile::torchvision(net);
    let looked = looked_for(searched, NO_HUB_CACHE);
    format!(
        "no ImageNet weights for the {net} trunk: looked for {looked}; not downloaded: {reason}. \
         Give a weight file (.pth or .safetensors with torchvision's names, \
         `LpipsBuilder::trunk_file`), put torchvision's {name} into the torch hub cache \
         (TORCH_HOME), or allow the download (network access, LPIPS_OFFLINE unset)",
        name = file.file_name
    )
}

/// The first few names of a list, then how many more: a message stays short.
fn few(names: &[String]) -> String {
    const SHOWN: usize = 4;
    if names.len() <= SHOWN {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..SHOWN].join(", "),
        names.len() - SHOWN
    )
}

fn not_a_whole_model(source_name: &str, published: Option<&str>) -> String {
    match published {
        Some(file) => format!(
            "{source_name} holds a torchvision trunk only, but ST-LPIPS is published as one \
             whole-model file, {file} (trunk, heads and scaling layer): give that file \
             (`LpipsBuilder::trunk_file`), name a Python environment with stlpips-pytorch \
             installed (`TrunkWeights::PythonEnv`, or LPIPS_STLPIPS_PYTHON), or keep \
             `TrunkWeights::Auto` to find it in the cache or download it"
        ),
        None => format!(
            "{source_name} holds a torchvision trunk only, but `LpipsBuilder::model_file` \
             reads a whole `lpips.LPIPS` state dict (trunk, heads and scaling layer): \
             give this file with `LpipsBuilder::trunk_file` instead"
        ),
    }
}

fn model_keys(source_name: &str, missing: &[String], unexpected: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", few(missing)));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected {}", few(unexpected)));
    }
    format!(
        "{source_name} is not a whole model of the chosen trunk: {}",
        parts.join("; ")
    )
}

/// A libtorch message without its C++ backtrace (the lines from `Exception raised
/// from ...` on, and `frame #N` lines) nor tch's "Internal torch error", on one line.
pub(crate) fn torch_message(message: &str) -> String {
    // tch's wording for every libtorch exception, whoever is at fault.
    let message = message
        .strip_prefix("Internal torch error: ")
        .unwrap_or(message);
    message
        .lines()
        .take_while(|l| !l.trim_start().starts_with("Exception raised from"))
        .filter(|l| !l.trim_start().starts_with("frame #"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn bad_shape(which: &str, shape: &[i64]) -> String {
    let mut text = format!(
        "input {which} has shape {shape:?}; expected N x 3 x H x W (RGB), or 3 x H x W for one image"
    );
    let channels_last = match shape {
        [_, _, c] | [_, _, _, c] => *c == 3,
        _ => false,
    };
    if channels_last {
        let (layout, order) = if shape.len() == 4 {
            ("N x H x W x 3", "[0, 3, 1, 2]")
        } else {
            ("H x W x 3", "[2, 0, 1]")
        };
        text.push_str(&format!(
            ". It looks channels-last ({layout}): permute it (`.permute({order})`), \
             or pass an ndarray view as `Hwc` (f32) or `HwcU8` (u8)"
        ));
    }
    text
}

fn size_mismatch(
    a: (i64, i64),
    b: (i64, i64),
    file_a: Option<&std::path::Path>,
    file_b: Option<&std::path::Path>,
) -> String {
    let side = |(h, w): (i64, i64), file: Option<&std::path::Path>| match file {
        Some(f) => format!("{} is {h}x{w}", f.display()),
        None => format!("{h}x{w}"),
    };
    let (sa, sb) = (side(a, file_a), side(b, file_b));
    let what = if file_a.is_some() || file_b.is_some() {
        format!("{sa}, {sb}")
    } else {
        format!("{sa} vs {sb}")
    };
    format!(
        "the images differ in size ({what}, height x width): resize one to the other first, \
         or build the model with `LpipsBuilder::resize(Resize::SecondToFirst)` to resize \
         the second to the first"
    )
}

fn range_fix(declared: crate::config::InputRange, min: f64, max: f64) -> String {
    use crate::config::InputRange;
    if min >= -0.5 && max > 2.0 && max <= 255.0 * 1.1 {
        return "the values look like 8-bit pixels (0..255): divide by 255 and declare \
                InputRange::ZeroToOne, or pass a u8 tensor (read as 8-bit pixels)"
            .into();
    }
    if declared != InputRange::MinusOneToOne && min >= -1.2 && max <= 1.2 {
        return "they fit [-1, 1]: declare InputRange::MinusOneToOne".into();
    }
    "map them into the declared range first (or declare the range they are in)".into()
}

/// Who is at fault for an error, and so who can fix it: [`LpipsError::fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The caller's inputs, arguments or files (images, tensors, features, settings,
    /// outputs).
    Input,
    /// Weights and model files: missing, unreadable, or not what the model needs.
    Weights,
    /// A download of weights.
    Download,
    /// BAPPS data and training runs.
    Dataset,
    /// The runtime: libtorch, memory, devices, threads, or a check of this crate's own.
    Runtime,
}

impl LpipsError {
    /// Who is at fault, by the group the error belongs to (the enum is ordered by it).
    pub fn fault(&self) -> Fault {
        match self {
            LpipsError::BadShape { .. }
            | LpipsError::InputKind { .. }
            | LpipsError::SizeMismatch { .. }
            | LpipsError::ShapeMismatch { .. }
            | LpipsError::EmptyBatch
            | LpipsError::TooSmall { .. }
            | LpipsError::OutOfRange { .. }
            | LpipsError::NotSingle { .. }
            | LpipsError::NonFinite { .. }
            | LpipsError::OutOfBatch { .. }
            | LpipsError::FeaturesMismatch { .. }
            | LpipsError::MemoryMismatch
            | LpipsError::Mask { .. }
            | LpipsError::InvalidArgument { .. }
            | LpipsError::Conflict { .. }
            | LpipsError::Parse { .. }
            | LpipsError::NoSuchVariant { .. }
            | LpipsError::TrainSetting { .. }
            | LpipsError::Image { .. }
            | LpipsError::CorruptImage { .. }
            | LpipsError::Io { .. }
            | LpipsError::OutputIsInput { .. }
            | LpipsError::NotAFile { .. }
            | LpipsError::Pair { .. } => Fault::Input,
            LpipsError::WeightFileOpen { .. }
            | LpipsError::TrunkNotFound { .. }
            | LpipsError::ModelNotFound { .. }
            | LpipsError::Weights { .. } => Fault::Weights,
            LpipsError::Download { .. } | LpipsError::DigestMismatch { .. } => Fault::Download,
            LpipsError::Dataset { .. }
            | LpipsError::Judgement { .. }
            | LpipsError::TrainCheckpoint { .. }
            | LpipsError::TrainingDiverged { .. } => Fault::Dataset,
            LpipsError::Torch(..)
            | LpipsError::OutOfMemory { .. }
            | LpipsError::MemoryBudget { .. }
            | LpipsError::DeviceUnavailable { .. }
            | LpipsError::Workers { .. }
            | LpipsError::NonFiniteDistance { .. }
            | LpipsError::Internal(..) => Fault::Runtime,
        }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LpipsError::Io {
            path: path.into(),
            source,
        }
    }
}
