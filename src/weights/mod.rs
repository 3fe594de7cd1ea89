//! Where weights come from: the embedded linear heads, trunk files, the torch hub cache
//! and verified downloads into it, and the `torch.save` reader behind them.
//!
//! Every source is read into one map of named tensors and checked key by key against
//! what the model expects, so a missing or misshapen tensor is an error that names it.

#[cfg(feature = "download")]
mod download;
mod formats;
mod hub;
mod published_model;
pub(crate) mod whole_model;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use crate::config::{Net, Version};
use crate::error::{LpipsError, Result};
use crate::trunk::Holds;

pub use crate::checkpoint::read_checkpoint;
pub use crate::error::{NO_HUB_CACHE, WeightProblem, WeightRole, looked_for};
pub use crate::trunk::{PublishedFile, TORCHVISION_BASE_URL, hub_checkpoint_dir};
#[cfg(feature = "download")]
pub use download::{DownloadLimits, download_verified, download_verified_with};
use formats::{SafetensorsBytes, SafetensorsFile, TensorFile};
pub use hub::{fetch, find_cached, offline, sha256_file};
pub use published_model::STLPIPS_PYTHON_ENV;

/// Named tensors from one weight source, with a description of that source for errors.
pub(crate) struct TensorMap {
    tensors: HashMap<String, Tensor>,
    file: Option<Box<dyn TensorFile>>,
    pub(crate) source_name: String,
    // Other names a tensor may be stored under (wanted name -> stored name).
    aliases: HashMap<String, String>,
}

impl TensorMap {
    pub(crate) fn from_tensors(tensors: Vec<(String, Tensor)>, source_name: &str) -> TensorMap {
        TensorMap {
            tensors: tensors.into_iter().collect(),
            file: None,
            source_name: source_name.to_string(),
            aliases: HashMap::new(),
        }
    }

    fn from_file(file: Box<dyn TensorFile>) -> TensorMap {
        TensorMap {
            tensors: HashMap::new(),
            source_name: file.source_name().to_string(),
            file: Some(file),
            aliases: HashMap::new(),
        }
    }

    /// Every tensor name in the source, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tensors.keys().cloned().collect();
        if let Some(file) = &self.file {
            names.extend(file.names());
        }
        names.sort();
        names.dedup();
        names
    }

    /// Whether a tensor can be taken under `key` (directly or through an alias).
    pub(crate) fn contains(&self, key: &str) -> bool {
        let key = self.aliases.get(key).map_or(key, String::as_str);
        self.names().iter().any(|n| n == key)
    }

    /// Lets the reference's training checkpoints (`net.slice{k}.{i}.weight`, the trunk as
    /// `lpips.LPIPS` names it) serve torchvision's names (`features.{i}.weight`); the
    /// slices keep torchvision's layer indices, so only the prefix changes.
    pub(crate) fn alias_reference_trunk(&mut self) {
        for name in self.names() {
            let Some(rest) = name.strip_prefix("net.slice") else {
                continue;
            };
            if let Some((_, tail)) = rest.split_once('.') {
                self.aliases
                    .insert(format!("features.{tail}"), name.clone());
            }
        }
    }

    /// Lets the tensor stored as `stored` be taken as `wanted`.
    pub(crate) fn alias(&mut self, wanted: &str, stored: &str) {
        if wanted != stored {
            self.aliases.insert(wanted.to_string(), stored.to_string());
        }
    }

    /// The name a wanted tensor is stored under.
    pub(crate) fn stored_name(&self, key: &str) -> String {
        self.aliases
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    /// The shape of the tensor stored as `key`, read from the file's index or header
    /// (nothing is copied); `None` without such a tensor.
    fn shape(&self, key: &str) -> Result<Option<Vec<i64>>> {
        if let Some(t) = self.tensors.get(key) {
            return Ok(Some(t.size()));
        }
        match &self.file {
            Some(file) => file.shape(key),
            None => Ok(None),
        }
    }

    /// Checks that the tensor `key` is there with the expected shape, without reading it.
    pub(crate) fn check(&self, key: &str, expected: &[i64]) -> Result<()> {
        let stored = self.stored_name(key);
        match self.shape(&stored)? {
            None => Err(WeightProblem::Missing {
                key: stored,
                expected: expected.to_vec(),
            }
            .at(&self.source_name)),
            Some(found) if found != expected => Err(WeightProblem::Shape {
                key: stored,
                expected: expected.to_vec(),
                found,
            }
            .at(&self.source_name)),
            Some(_) => Ok(()),
        }
    }

    /// Takes the tensor `key`, checking its shape and values; converted to f32. The
    /// shape is checked before anything is copied out of the file, so a tensor the model
    /// cannot use costs no memory.
    pub(crate) fn take(&mut self, key: &str, expected: &[i64]) -> Result<Tensor> {
        self.check(key, expected)?;
        let key = self.stored_name(key);
        let key = key.as_str();
        let tensor = match (self.tensors.remove(key), &self.file) {
            (Some(t), _) => Some(t),
            (None, Some(file)) => file.read(key)?,
            (None, None) => None,
        };
        let tensor = tensor.ok_or_else(|| {
            WeightProblem::Missing {
                key: key.to_string(),
                expected: expected.to_vec(),
            }
            .at(&self.source_name)
        })?;
        let kind = tensor.f_kind()?;
        if !matches!(
            kind,
            Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
        ) {
            return Err(WeightProblem::Dtype {
                key: key.to_string(),
                dtype: format!("{kind:?}"),
            }
            .at(&self.source_name));
        }
        let tensor = tensor.f_to_kind(Kind::Float)?;
        if !bool::try_from(tensor.f_isfinite()?.f_all()?)? {
            return Err(WeightProblem::NonFinite {
                key: key.to_string(),
            }
            .at(&self.source_name));
        }
        Ok(tensor)
    }
}

/// Where the trunk's ImageNet weights come from.
#[derive(Debug, Default)]
#[non_exhaustive]
pub enum TrunkWeights {
    /// torchvision's checkpoint from the torch hub cache (see [`hub_checkpoint_dir`]),
    /// downloaded and verified when missing (`download` feature, unless `LPIPS_OFFLINE`
    /// is set); an error lists where it looked and how to fix it.
    #[default]
    Auto,
    /// A weight file with torchvision's tensor names (`features.{i}.weight|bias`); a whole
    /// torchvision state dict (classifier too) is fine, extra tensors are ignored.
    File(PathBuf),
    /// Tensors already in memory, named as in a file.
    Tensors(Vec<(String, Tensor)>),
    /// Random initialisation (libtorch's defaults); for benchmarks and training from
    /// scratch, never for measuring.
    RandomInit,
    /// For [`Variant::ShiftTolerant`](crate::Variant::ShiftTolerant): the published model
    /// file as the Python package `stlpips-pytorch` installed it, in the Python
    /// environment at this path: its `python` executable, its prefix (a virtualenv's
    /// folder) or its `site-packages` folder. The file must have the published SHA-256.
    /// The environment variable `LPIPS_STLPIPS_PYTHON` does the same for
    /// [`TrunkWeights::Auto`].
    PythonEnv(PathBuf),
}

/// Reads a weight file in any of the formats (`formats::open`: safetensors by its
/// extension, anything else as a `torch.save` checkpoint).
pub(crate) fn read_trunk_file(path: &Path) -> Result<TensorMap> {
    Ok(TensorMap::from_file(formats::open(path)?))
}

/// Finds the trunk's weights in the torch hub cache, downloading them when missing.
pub(crate) fn find_trunk(net: Net, progress: &mut dyn FnMut(Progress<'_>)) -> Result<PathBuf> {
    hub::resolve(net, progress)
}

/// How a download goes, for a caller that shows it (the library prints nothing).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// Before connecting: the temporary file the bytes go to until they are verified
    /// (`.lpips-download-*` beside `dest`). A caller that handles Ctrl-C itself should
    /// remove it if it ends the process before [`Progress::Closed`]; otherwise a later
    /// download into the same folder removes it.
    Preparing {
        /// Where from.
        url: &'a str,
        /// Where to.
        dest: &'a Path,
        /// The temporary file.
        temporary: &'a Path,
    },
    /// The transfer began.
    Started {
        /// Where from.
        url: &'a str,
        /// Where to (the file appears there only once verified).
        dest: &'a Path,
        /// Bytes to come, when known.
        total: Option<u64>,
    },
    /// Bytes received so far.
    Advanced {
        /// Bytes received so far.
        done: u64,
    },
    /// All bytes received (verification follows).
    Finished,
    /// The download is over, verified and in place or failed: its temporary file is
    /// gone (renamed or removed). Always the last event, after [`Progress::Preparing`].
    Closed,
}

/// A download progress callback kept by the model builder.
pub(crate) struct ProgressFn(pub(crate) Box<dyn FnMut(Progress<'_>) + Send>);

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn")
    }
}

/// The reference's linear heads, embedded from `weights/` by the trunk's file.
fn head_bytes(net: Net, version: Version) -> &'static [u8] {
    match (&net.spec().holds, version) {
        (Holds::Trunk { heads_v0_1, .. }, Version::V0_1) => heads_v0_1,
        (Holds::Trunk { heads_v0_0, .. }, Version::V0_0) => heads_v0_0,
        // Plain trunks all have embedded heads; an empty buffer reads as a format error.
        (Holds::WholeModel { .. }, _) => &[],
    }
}

/// The linear-head weights, one `(1, C, 1, 1)` tensor per tap, named
/// `lin{k}.model.1.weight` as in the reference's files.
pub fn linear_heads(net: Net, version: Version) -> Result<Vec<Tensor>> {
    let name = format!("embedded heads {version}/{net}");
    let mut map = TensorMap::from_file(Box::new(SafetensorsFile::new(
        SafetensorsBytes::Static(head_bytes(net, version)),
        &name,
    )?));
    heads_from(net, &mut map)
}

/// Linear heads from a weight source (`lin{k}.model.1.weight`, shape `(1, C, 1, 1)`),
/// each checked for presence, shape and finite values.
pub(crate) fn heads_from(net: Net, source: &mut TensorMap) -> Result<Vec<Tensor>> {
    let wanted: Vec<(String, [i64; 4])> = net
        .channels()
        .iter()
        .enumerate()
        .map(|(k, &c)| (format!("lin{k}.model.1.weight"), [1, c, 1, 1]))
        .collect();
    for (name, shape) in &wanted {
        source.check(name, shape)?;
    }
    wanted
        .iter()
        .map(|(name, shape)| source.take(name, shape))
        .collect()
}

/// The trunk's tensors from a weight source, every one checked for presence, shape and
/// finite values, under torchvision's names, in name order. `expected` is the trunk's own
/// variables (name and shape). All names and shapes are checked before any tensor is
/// copied out of the file.
pub(crate) fn trunk_tensors(
    expected: &std::collections::HashMap<String, Tensor>,
    source: &mut TensorMap,
) -> Result<Vec<(String, Tensor)>> {
    let mut names: Vec<&String> = expected.keys().collect();
    names.sort();
    // Every name and shape first, so that a file the model cannot use is refused
    // before any of it is copied.
    for name in &names {
        source.check(name, &expected[*name].size())?;
    }
    names
        .into_iter()
        .map(|name| Ok((name.clone(), source.take(name, &expected[name].size())?)))
        .collect()
}

/// The other plain trunk whose every tensor (name and shape) a source holds, if any:
/// for the message about a file given to the wrong net.
pub(crate) fn other_trunk(net: Net, source: &TensorMap) -> Option<Net> {
    Net::ALL.into_iter().filter(|&n| n != net).find(|&other| {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        crate::layers::Trunk::try_new(&vs.root(), other.spec()).is_ok()
            && vs
                .variables()
                .iter()
                .all(|(name, t)| source.check(name, &t.size()).is_ok())
    })
}

/// Writes a trunk's tensors from any weight file (`.pth`/`.pt` checkpoint or
/// safetensors) to a safetensors file with torchvision's names, f32; classifier and
/// other tensors are left out. With `net` `None` the trunk is recognised from the
/// tensors. The output is written to a temporary file and renamed into place.
pub fn convert_trunk(input: &Path, output: &Path, net: Option<Net>) -> Result<Net> {
    if crate::files::same_file(input, output) {
        return Err(LpipsError::OutputIsInput {
            output: output.to_path_buf(),
            input: input.to_path_buf(),
        });
    }
    let candidates = match net {
        Some(net) => vec![net],
        None => Net::ALL.to_vec(),
    };
    let mut failures = Vec::new();
    for net in candidates.iter().copied() {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _trunk = crate::layers::Trunk::try_new(&vs.root(), net.spec())?;
        match trunk_tensors(&vs.variables(), &mut read_trunk_file(input)?) {
            Ok(tensors) => {
                crate::files::write_atomic_path(output, |tmp| {
                    Ok(Tensor::write_safetensors(&tensors, tmp)?)
                })?;
                return Ok(net);
            }
            Err(e) if candidates.len() == 1 => return Err(e),
            Err(e) => failures.push(format!("{net}: {e}")),
        }
    }
    Err(WeightProblem::Format {
        reason: format!(
            "not the trunk of any of {} ({})",
            crate::trunk::all_names(),
            failures.join("; ")
        ),
    }
    .at(input.display().to_string()))
}
