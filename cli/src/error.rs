//! The command's one error type. Every command returns [`CliError`]; `main` prints it
//! once, as `lpips: error: ...` on stderr, and ends with its [`CliError::exit_code`].
//! Library errors are worded for the command line in one place, [`worded`]: with the
//! flags that fix them, never the library calls that the library's own messages name.

use std::path::PathBuf;
use std::process::ExitCode;

use lpips::LpipsError;
use lpips::weights::{NO_HUB_CACHE, WeightProblem, looked_for};

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A library error; `context` says what the command was doing when the library's
    /// message does not.
    #[error("{}", lpips_message(.context.as_deref(), .source))]
    Lpips {
        context: Option<String>,
        source: Box<LpipsError>,
    },
    /// The command line asks for something that cannot be done: flags that do not go
    /// together, an output path that cannot be written.
    #[error("{0}")]
    Usage(String),
    /// An input is not what the command needs (images of two sizes, a partial file of
    /// another run, a missing mask).
    #[error("{0}")]
    Input(String),
    /// A file or folder could not be read or written.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// Standard output could not be written.
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    /// Standard output was closed by its reader (`lpips ... | head -1`): the command
    /// ends quietly and successfully, like any Unix tool.
    #[error("standard output was closed")]
    StdoutClosed,
    /// Some of the items (pairs, trunks) failed; each was reported as it failed.
    #[error("{failed} of {total} {what} failed (listed above)")]
    Failed {
        failed: usize,
        total: usize,
        what: &'static str,
    },
    /// JSON could not be written or read.
    #[error("{context}: {source}")]
    Json {
        context: String,
        source: serde_json::Error,
    },
    /// The CSV output could not be written.
    #[error("cannot write the CSV output: {0}")]
    Csv(#[from] csv::Error),
    /// SIGINT or SIGTERM stopped a folder run; `kept` names the partial file holding
    /// the finished pairs and how many there are (None without `--out`).
    #[error("stopped by {}{}", crate::signals::name(*.signal), kept_message(.kept.as_ref()))]
    Interrupted {
        signal: i32,
        kept: Option<(usize, PathBuf)>,
    },
}

impl From<LpipsError> for CliError {
    fn from(source: LpipsError) -> CliError {
        CliError::Lpips {
            context: None,
            source: Box::new(source),
        }
    }
}

impl CliError {
    /// The process's exit status: 128 + the signal for an interrupted run, 0 when
    /// standard output was closed, else 1.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Interrupted { signal, .. } => {
                ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
            }
            CliError::StdoutClosed => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        }
    }

    /// Whether the error is said on stderr (a closed standard output is not).
    pub(crate) fn is_reported(&self) -> bool {
        !matches!(self, CliError::StdoutClosed)
    }
}

/// Adds what the command was doing to an error: `.context("cannot write the heat map")`.
pub(crate) trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T, CliError>;
}

impl<T> Context<T> for Result<T, LpipsError> {
    fn context(self, context: impl Into<String>) -> Result<T, CliError> {
        self.map_err(|source| CliError::Lpips {
            context: Some(context.into()),
            source: Box::new(source),
        })
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, context: impl Into<String>) -> Result<T, CliError> {
        self.map_err(|source| CliError::Io {
            context: context.into(),
            source,
        })
    }
}

impl<T> Context<T> for Result<T, serde_json::Error> {
    fn context(self, context: impl Into<String>) -> Result<T, CliError> {
        self.map_err(|source| CliError::Json {
            context: context.into(),
            source,
        })
    }
}

fn lpips_message(context: Option<&str>, source: &LpipsError) -> String {
    match context {
        Some(context) => format!("{context}: {}", worded(source)),
        None => worded(source),
    }
}

fn kept_message(kept: Option<&(usize, PathBuf)>) -> String {
    match kept {
        Some((rows, path)) => format!(
            "; the {rows} finished pairs are kept in {}: run the same command with --resume \
             to continue",
            path.display()
        ),
        None => " (nothing kept: --out keeps finished pairs for --resume)".to_string(),
    }
}

/// A library error as the command line says it: with the flags that fix it, never the
/// library calls that the library's own messages name. Errors without advice of their
/// own read as the library writes them.
pub(crate) fn worded(e: &LpipsError) -> String {
    match e {
        LpipsError::TrunkNotFound {
            net,
            searched,
            reason,
        } => format!(
            "no ImageNet weights for the {net} trunk: looked for {}; not downloaded: {reason}. \
             Pass `--trunk FILE` (.pth or .safetensors with torchvision's names), put \
             torchvision's {} into the torch hub cache (TORCH_HOME), or run \
             `lpips weights fetch {net}` with network access and LPIPS_OFFLINE unset",
            looked_for(searched, NO_HUB_CACHE),
            lpips::weights::PublishedFile::torchvision(*net).file_name
        ),
        LpipsError::ModelNotFound {
            what,
            file_name,
            searched,
            reason,
        } => format!(
            "no weights for {what}: looked for {}; not downloaded: {reason}. Pass \
             `--trunk FILE` (the published {file_name}), `--python-env DIR` naming a Python \
             environment with stlpips-pytorch installed (or set {}), put {file_name} into \
             the cache folder, or allow the download (network access, LPIPS_OFFLINE unset)",
            looked_for(searched, "no cache folder"),
            lpips::weights::STLPIPS_PYTHON_ENV
        ),
        LpipsError::CorruptImage { path, reason } => format!(
            "cannot read image {}: {reason} (a damaged file: refused, and no option of \
             `lpips` accepts it; re-encode it with a tool that keeps what can be decoded, \
             or replace it)",
            path.display()
        ),
        LpipsError::MemoryBudget {
            height,
            width,
            needed,
            allowed,
            why,
        } => format!(
            "a {height}x{width} comparison needs at least {needed} bytes even in tiles, but \
             {allowed} bytes are allowed ({}); allow more (--max-memory)",
            why.replace("max_memory", "--max-memory")
        ),
        LpipsError::TrainSetting {
            field,
            value,
            expected,
        } => {
            let flags = field
                .split(" + ")
                .map(|f| format!("--{}", f.replace('_', "-")))
                .collect::<Vec<_>>()
                .join(" + ");
            format!("{flags} = {value}: expected {expected}")
        }
        LpipsError::TrainingDiverged { epoch, what, lr } => {
            format!("training diverged at epoch {epoch} ({what}): lower --lr (now {lr:e})")
        }
        e => worded_weights(e).unwrap_or_else(|| e.to_string()),
    }
}

/// The weight files' errors, with the flags that point at the right file.
fn worded_weights(e: &LpipsError) -> Option<String> {
    Some(match e {
        LpipsError::WeightFileOpen { role, path, source } => {
            let flag = match role {
                lpips::weights::WeightRole::Heads => "--lin FILE",
                lpips::weights::WeightRole::Model => "--model FILE",
                _ => "--trunk FILE",
            };
            format!(
                "cannot open the {role} file {} (given with {flag}): {source}",
                path.display()
            )
        }
        LpipsError::Weights {
            source_name,
            problem: WeightProblem::OtherNet { net, found },
        } => format!(
            "{source_name} holds the {found} trunk, but the model is {net}: pass `--net {found}`, \
             or give the {net} trunk's file with `--trunk FILE`"
        ),
        LpipsError::Weights {
            source_name,
            problem:
                WeightProblem::NotAWholeModel {
                    published: Some(file),
                },
        } => format!(
            "{source_name} holds a torchvision trunk only, but ST-LPIPS is published as one \
             whole-model file, {file}: pass it with `--trunk FILE`, name a Python environment \
             with stlpips-pytorch installed (`--python-env DIR`), or let it be downloaded"
        ),
        LpipsError::Weights {
            source_name,
            problem: WeightProblem::WholeModelAsTrunk,
        } => format!(
            "{source_name} holds a whole lpips.LPIPS model (trunk, heads and scaling layer), \
             not a torchvision trunk: pass it with `--model FILE` instead of `--trunk`"
        ),
        LpipsError::Weights {
            source_name,
            problem: WeightProblem::NotAWholeModel { published: None },
        } => format!(
            "{source_name} holds a torchvision trunk only, but --model reads a whole \
             lpips.LPIPS state dict: pass this file with `--trunk FILE` instead"
        ),
        _ => return None,
    })
}

/// [`worded`] for the library's folder engine, which takes a function of the error.
pub(crate) fn describe(e: LpipsError) -> String {
    worded(&e)
}
