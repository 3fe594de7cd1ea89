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
/// `Debug` prints the same text as `Display`: a `fn main() -> Result<(), LpipsError>`
/// that fails shows the message with its fix, not a struct dump (nor libtorch's C++
/// backtrace); the facts stay reachable through the variants' fields.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum LpipsError {
    /// An input tensor is not `N x 3 x H x W`.
    #[error("input {which} has shape {shape:?}; expected N x 3 x H x W (RGB)")]
    BadShape {
        /// `"in0"` or `"in1"`.
        which: &'static str,
        /// The shape that was passed.
        shape: Vec<i64>,
    },
    /// An input tensor holds values that are not real numbers (complex, bool, quantised).
    #[error("input tensors must hold real numbers (float or integer), not {kind}")]
    InputKind {
        /// The tensor's kind.
        kind: String,
    },
    /// The two inputs have different shapes.
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
        "input {which} has values in [{min}, {max}] but was declared {declared:?} ({lo} to {hi}); \
         declare its real range (InputRange), or map it first"
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
    /// A distance came out NaN or infinite (e.g. weights that overflow): never a result.
    #[error(
        "distance {index} of the batch is not finite (NaN or infinite: overflowing weights or inputs?)"
    )]
    NonFiniteDistance {
        /// Its index in the batch (for a map, the index of the first bad value).
        index: i64,
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
    /// A weight the model needs is absent from the weight source.
    #[error("weight `{key}` (shape {expected:?}) is missing from {source_name}")]
    MissingWeight {
        /// The tensor name, in torchvision's naming.
        key: String,
        /// The shape it should have.
        expected: Vec<i64>,
        /// Where the weights came from.
        source_name: String,
    },
    /// A weight has the wrong shape.
    #[error("weight `{key}` in {source_name} has shape {found:?}, expected {expected:?}")]
    WeightShape {
        /// The tensor name.
        key: String,
        /// The shape the model needs.
        expected: Vec<i64>,
        /// The shape found in the file.
        found: Vec<i64>,
        /// Where the weights came from.
        source_name: String,
    },
    /// A weight is stored in a type that cannot be converted to floats.
    #[error("weight `{key}` in {source_name} has unsupported dtype {dtype}")]
    WeightDtype {
        /// The tensor name.
        key: String,
        /// The stored dtype.
        dtype: String,
        /// Where the weights came from.
        source_name: String,
    },
    /// A weight holds NaN or infinite values.
    #[error("weight `{key}` in {source_name} holds NaN or infinite values")]
    NonFiniteWeight {
        /// The tensor name.
        key: String,
        /// Where the weights came from.
        source_name: String,
    },
    /// A weight file is corrupt or not what its name says.
    #[error("cannot read weights from {source_name}: {reason}")]
    WeightFormat {
        /// Where the weights came from.
        source_name: String,
        /// What is wrong with them.
        reason: String,
    },
    /// A checkpoint names a Python callable that a state dict never needs; refused
    /// before anything could run.
    #[error(
        "refusing to load {source_name}: it names `{global}`, which a state dict never needs (nothing was executed)"
    )]
    ForbiddenGlobal {
        /// The file.
        source_name: String,
        /// The Python global, as `module.name`.
        global: String,
    },
    /// A whole-model file (`LpipsBuilder::model_file`, or a shift-tolerant model's file)
    /// does not hold exactly the model's tensors: some are missing, or it holds others.
    #[error("{}", model_keys(source_name, missing, unexpected))]
    ModelKeys {
        /// The file.
        source_name: String,
        /// Tensors the model needs that the file lacks, as `name (shape)`.
        missing: Vec<String>,
        /// Tensors in the file that the model has no place for.
        unexpected: Vec<String>,
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
    /// No weights of a whole published model (ST-LPIPS) were given, found or downloaded.
    #[error(
        "no weights for {what}: looked for {}; not downloaded: {reason}. Give the file \
         (`LpipsBuilder::trunk_file`), point LPIPS_STLPIPS_PYTHON at a Python \
         environment with stlpips-pytorch installed (`TrunkWeights::PythonEnv`), put {file_name} \
         into the cache folder, or allow the download (network access, LPIPS_OFFLINE unset)",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
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
    /// An allocation that grows with an input (an image's pixels, a file's bytes) was
    /// refused: the input is too large for the memory left. The process goes on.
    #[error("{what}: not enough memory ({bytes} bytes could not be allocated)")]
    OutOfMemory {
        /// What needed the memory (e.g. the image file).
        what: String,
        /// How much was asked for.
        bytes: u64,
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
    /// The requested device cannot be used.
    #[error("device `{device}` is not available: {reason}")]
    DeviceUnavailable {
        /// The device asked for.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A mask or pixel weights cannot be used.
    #[error("mask: {reason}")]
    Mask {
        /// What is wrong with it.
        reason: String,
    },
    /// Not even a tiled evaluation fits in the memory allowed.
    #[error(
        "a {height}x{width} comparison needs at least {needed} bytes even in tiles, but \
         {allowed} bytes are allowed ({why}); allow more (max_memory, --max-memory)"
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
    /// Two sets of features cannot be compared: one holds features, the other the
    /// images kept for tiled evaluation (they were made by models with other memory
    /// settings).
    #[error(
        "one set of features was computed in one pass and the other kept for tiled \
         evaluation: make both with the same model"
    )]
    MemoryMismatch,
    /// Workers ([`crate::workers::with_workers`]) could not be started.
    #[error("cannot start {threads} workers: {reason}")]
    Workers {
        /// How many were asked for.
        threads: usize,
        /// Why not.
        reason: String,
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
    /// libtorch reported an error.
    #[error("libtorch: {}", first_line(&.0.to_string()))]
    Torch(#[from] tch::TchError),
    /// A BAPPS folder is not laid out as the reference's loaders expect.
    #[error("dataset {}: {reason}", path.display())]
    Dataset {
        /// The folder (or file) at fault.
        path: PathBuf,
        /// What is wrong and what was expected.
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
    /// A BAPPS judgement file (`.npy`) does not hold one float in [0, 1].
    #[error("judgement file {}: {reason}", path.display())]
    Judgement {
        /// The `.npy` file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
}

fn trunk_not_found(net: Net, searched: &[PathBuf], reason: &str) -> String {
    let file = crate::trunk::PublishedFile::torchvision(net);
    let looked = if searched.is_empty() {
        "no torch hub cache folder (no TORCH_HOME, XDG_CACHE_HOME or HOME)".to_string()
    } else {
        searched
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    };
    format!(
        "no ImageNet weights for the {net} trunk: looked for {looked}; not downloaded: {reason}. \
         Give a weight file (.pth or .safetensors with torchvision's names, \
         `LpipsBuilder::trunk_file`), put torchvision's {name} into the torch hub cache \
         (TORCH_HOME), or allow the download (network access, LPIPS_OFFLINE unset)",
        name = file.file_name
    )
}

fn model_keys(source_name: &str, missing: &[String], unexpected: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected {}", unexpected.join(", ")));
    }
    format!(
        "{source_name} is not a whole model of the chosen trunk: {}",
        parts.join("; ")
    )
}

// libtorch messages carry a C++ backtrace after the first line; users need the first.
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message).trim()
}

impl LpipsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LpipsError::Io {
            path: path.into(),
            source,
        }
    }
}
