//! [`LpipsBuilder`]: the model's settings and where its weights come from (embedded
//! heads or a heads file; trunk from the hub cache, a file, tensors or random; or a whole
//! model from one file, as ST-LPIPS is published), each weight checked by name and shape
//! as it is loaded.

use std::path::PathBuf;

use tch::{Device, nn};

use super::Lpips;
use super::heads::NetLinLayers;
use super::scaling::ScalingLayer;
use crate::config::{FeedRange, Heads, InputRange, Lin, Net, Precision, Resize, Variant, Version};
use crate::error::{LpipsError, Result, WeightProblem, WeightRole};
use crate::layers::Trunk;
use crate::trunk::{Holds, TrunkSpec};
use crate::weights::{self, Progress, ProgressFn, PublishedFile, TensorMap, TrunkWeights};

// Tiles larger than any image mean one pass; the cap keeps the tiling arithmetic far
// from overflow.
const MAX_TILE: i64 = 1 << 24;

/// Builds an [`Lpips`] model; see [`Lpips::builder`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct LpipsBuilder {
    net: Net,
    variant: Variant,
    model_file: Option<PathBuf>,
    version: Version,
    heads: Heads,
    spatial: bool,
    range: InputRange,
    feed: FeedRange,
    max_memory: Option<u64>,
    tile: Option<i64>,
    no_range_check: bool,
    resize: Resize,
    precision: Precision,
    no_winograd: bool,
    winograd_everywhere: bool,
    device: Option<Device>,
    trunk: TrunkWeights,
    heads_file: Option<PathBuf>,
    progress: Option<ProgressFn>,
}

impl LpipsBuilder {
    /// The trunk (default [`Net::Alex`]).
    pub fn net(mut self, net: Net) -> Self {
        self.net = net;
        self
    }

    /// Plain LPIPS (the default) or ST-LPIPS ([`Variant::ShiftTolerant`], alex and vgg).
    ///
    /// A shift-tolerant model is published as one file (trunk, heads and scaling layer),
    /// found as [`TrunkWeights`] says: [`TrunkWeights::Auto`] looks in the Python
    /// environment named by `LPIPS_STLPIPS_PYTHON`, else in
    /// `$TORCH_HOME/hub/checkpoints/stlpips/`, else downloads it there (verified against
    /// the published SHA-256); [`TrunkWeights::File`] is such a file of your own, loaded
    /// strictly as [`model_file`](Self::model_file) does; [`TrunkWeights::PythonEnv`]
    /// names the environment directly. [`Version::V0_0`] drops the input scaling as the
    /// package's `version='0.0'` does; [`Heads::None`] ignores the file's heads.
    pub fn variant(mut self, variant: Variant) -> Self {
        self.variant = variant;
        self
    }

    /// The whole model from one file: a `torch.save`d `lpips.LPIPS` state dict holding the
    /// trunk (`net.slice{k}.{i}.weight|bias`), the heads (`lin{k}.model.1.weight`, or
    /// `lins.{k}.*`) and the scaling layer (`scaling_layer.shift|scale`), e.g. from
    /// training the whole network. Strict: every tensor of the chosen trunk's model must
    /// be there with its shape, and a file holding anything else is refused with
    /// [`WeightProblem::ModelKeys`](crate::weights::WeightProblem::ModelKeys) naming each such tensor. Replaces the trunk source
    /// ([`trunk`](Self::trunk) must stay [`TrunkWeights::Auto`]); the file's scaling
    /// layer is used (under [`Version::V0_1`]) and its heads (unless [`Heads::None`] or a
    /// [`heads_file`](Self::heads_file)).
    pub fn model_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.model_file = Some(path.into());
        self
    }

    /// The release: input scaling and which heads (default [`Version::V0_1`]).
    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// Learned heads or the uncalibrated baseline (default [`Heads::Learned`]).
    pub fn heads(mut self, heads: Heads) -> Self {
        self.heads = heads;
        self
    }

    /// Version and heads at once, as the CLI's `--lin v0.1|v0.0|none`.
    pub fn lin(self, lin: Lin) -> Self {
        let (version, heads) = lin.split();
        self.version(version).heads(heads)
    }

    /// Whether [`Lpips::forward`] returns an `N x 1 x H x W` map instead of
    /// `N x 1 x 1 x 1` (default false).
    pub fn spatial(mut self, spatial: bool) -> Self {
        self.spatial = spatial;
        self
    }

    /// The range of bare tensors given to the model (default [-1, 1]); the reference's
    /// `normalize=True` is [`InputRange::ZeroToOne`].
    pub fn input_range(mut self, range: InputRange) -> Self {
        self.range = range;
        self
    }

    /// What the trunk is fed (default [`FeedRange::MinusOneToOne`], the reference's).
    /// [`FeedRange::ZeroToOne`] is a compatibility switch for comparing with numbers
    /// published by evaluation code that feeds [0, 1] images to LPIPS unchanged (3D
    /// Gaussian Splatting's `metrics.py`): every input, once in [-1, 1], is mapped to
    /// `(x + 1) / 2` before the model.
    pub fn feed_range(mut self, feed: FeedRange) -> Self {
        self.feed = feed;
        self
    }

    /// Memory (bytes) one comparison may use; images whose single pass would need more
    /// are evaluated in tiles, with the same result (README, "Any image size in bounded
    /// memory"). Default: 90% of the memory the machine has available (`MemAvailable` in
    /// /proc/meminfo) when the model is built. The limit covers the comparison's tensors
    /// as estimated from the trunk's layers; the process adds libtorch and the weights.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// Always evaluates in tiles with cores of this many pixels a side (rounded up to
    /// the trunk's stride grid, 16), whatever the memory: for tests and benchmarks of the
    /// tiled path; [`max_memory`](Self::max_memory) chooses tiles by itself.
    pub fn tile(mut self, core: i64) -> Self {
        self.tile = Some(core.clamp(1, MAX_TILE));
        self
    }

    /// Whether inputs clearly outside their declared range are refused with
    /// [`LpipsError::OutOfRange`](crate::LpipsError::OutOfRange) (default true). Tensors
    /// that require gradients are never refused for their range: an optimiser moves
    /// pixels past the bounds on its way (see the crate docs, "As a training loss").
    pub fn check_range(mut self, check: bool) -> Self {
        self.no_range_check = !check;
        self
    }

    /// What to do with pairs of different sizes (default: an error).
    pub fn resize(mut self, resize: Resize) -> Self {
        self.resize = resize;
        self
    }

    /// Precision of the trunk (default f32). f16 and bf16 are for GPUs mostly; their
    /// error against f32 is measured in `tests/library/precision.rs` (CPU, ImageNet
    /// AlexNet / VGG16 on real photographs: f16 at most 3.8e-4 relative, bf16 7.9e-3;
    /// docs/testing.md).
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Whether the model's own CPU kernels are on (default true): the trunk's 3x3
    /// stride-1 convolutions as Winograd's F(4x4, 3x3) (fewer multiplications; each
    /// layer's filters transformed once, at the first pass that uses them, and shared by
    /// every handle), and the comparison stage (`normalize_tensor`, the squared
    /// difference and the heads) in one pass per tap. Only f32 passes without gradients
    /// use them (distances, features, maps, the folder commands, tiles, BAPPS
    /// evaluation), and the convolutions only on layer shapes where they measured faster
    /// than libtorch's direct convolution; `forward` on inputs that require gradients,
    /// heads or trunks being trained, GPUs and half precision keep libtorch's operations.
    /// The rounding differs from libtorch's by about 1e-6 relative, far within the
    /// reference tolerance (docs/benchmarks.md, "Winograd convolution"); turn this off
    /// for results equal bit for bit to earlier versions. Trunk weights changed in place
    /// (through [`Lpips::weights`]) after a pass has used the transformed filters are not
    /// seen by them: build the model again, or turn this off.
    pub fn winograd(mut self, on: bool) -> Self {
        self.no_winograd = !on;
        self
    }

    /// The Winograd path on every 3x3 stride-1 layer and input size, not only where it
    /// is faster: what the reference tests check its exactness with (their small inputs
    /// would otherwise stay on direct convolution). Not a stable interface.
    #[doc(hidden)]
    pub fn winograd_everywhere(mut self) -> Self {
        self.no_winograd = false;
        self.winograd_everywhere = true;
        self
    }

    /// Device to run on (default CPU). [`build`](Self::build) fails with
    /// [`LpipsError::DeviceUnavailable`](crate::LpipsError::DeviceUnavailable) when this
    /// process cannot use it.
    pub fn device(mut self, device: Device) -> Self {
        self.device = Some(device);
        self
    }

    /// Where the trunk's weights come from (default: the torch hub cache, else a
    /// verified download).
    pub fn trunk(mut self, trunk: TrunkWeights) -> Self {
        self.trunk = trunk;
        self
    }

    /// Shorthand for `trunk(TrunkWeights::File(path))`.
    pub fn trunk_file(self, path: impl Into<PathBuf>) -> Self {
        self.trunk(TrunkWeights::File(path.into()))
    }

    /// Linear heads from a file instead of the embedded ones: a safetensors file written
    /// by `lpips train` (or any file with `lin{k}.model.1.weight` tensors of shape
    /// `(1, C, 1, 1)`), or a checkpoint from the reference's own training
    /// (`torch.save`d `lpips.LPIPS` state dict). As the reference's `model_path` does,
    /// a trunk stored in the same file (a `--tune` or `--scratch` run) is used too, unless
    /// [`LpipsBuilder::trunk`] chose another source. The input scaling stays the chosen
    /// [`Version`]'s (v0.1, as the reference trains with, by default).
    pub fn heads_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.heads_file = Some(path.into());
        self.heads = Heads::Learned;
        self
    }

    /// Hears how a download of the trunk's weights goes ([`TrunkWeights::Auto`] with no
    /// cached file), e.g. to draw a progress bar; by default nothing is reported.
    pub fn download_progress(mut self, f: impl FnMut(Progress<'_>) + Send + 'static) -> Self {
        self.progress = Some(ProgressFn(Box::new(f)));
        self
    }

    /// Builds the model, loading and checking every weight.
    pub fn build(mut self) -> Result<Lpips> {
        let device = crate::runtime::check_device(self.device.unwrap_or(Device::Cpu))?;
        let (net, variant) = (self.net, self.variant);
        let spec = crate::layers::spec(net, variant)?;
        let vs = nn::VarStore::new(device);
        let trunk = Trunk::try_new(&vs.root(), spec)?;
        let mut sources = self.weight_sources(spec, &vs)?;
        let _guard = tch::no_grad_guard();
        sources.load_trunk(&vs, net)?;
        let trunk = self.prepare_trunk(trunk, device)?;
        let heads = self.load_heads(spec, &mut sources, device)?;
        let scaling = self.scaling(&sources, device)?;
        Ok(Lpips {
            net,
            variant,
            spec,
            version: self.version,
            spatial: self.spatial,
            range: self.range,
            feed: self.feed,
            memory_budget: self.memory_budget(),
            tile: self.tile,
            check_range: !self.no_range_check,
            resize: self.resize,
            precision: self.precision,
            device,
            scaling,
            trunk,
            lins: NetLinLayers {
                heads,
                train_dropout: None,
            },
        })
    }

    /// Runs `f` with the download progress callback, or one that ignores everything.
    fn with_progress<R>(&mut self, f: impl FnOnce(&mut dyn FnMut(Progress<'_>)) -> R) -> R {
        match self.progress.as_mut() {
            Some(progress) => f(&mut *progress.0),
            None => f(&mut |_| {}),
        }
    }

    /// Step one: every weight file the settings name, opened and checked against the
    /// trunk's variables `vs` where it holds a whole model; nothing copied yet.
    fn weight_sources(&mut self, spec: &TrunkSpec, vs: &nn::VarStore) -> Result<Sources> {
        let trunk_source = std::mem::take(&mut self.trunk);
        let (whole, trunk_source) = match self.whole_model_source(spec, trunk_source)? {
            Ok(mut map) => (
                Some(weights::whole_model::load(spec, &vs.variables(), &mut map)?),
                TrunkWeights::Auto,
            ),
            Err(trunk_source) => (None, trunk_source),
        };
        let heads = match &self.heads_file {
            Some(path) => {
                let mut map = read_weights(path, WeightRole::Heads)?;
                map.alias_reference_trunk();
                Some(map)
            }
            None => None,
        };
        let trunk_in_heads_file = heads
            .as_ref()
            .is_some_and(|m| m.contains("features.0.weight"));
        let net = self.net;
        let trunk = match trunk_source {
            _ if whole.is_some() => TrunkSource::WholeModel,
            TrunkWeights::Auto if trunk_in_heads_file => TrunkSource::HeadsFile,
            TrunkWeights::Auto => {
                let path = self.with_progress(|progress| weights::find_trunk(net, progress))?;
                TrunkSource::Map(Box::new(weights::read_trunk_file(&path)?))
            }
            TrunkWeights::File(path) => {
                TrunkSource::Map(Box::new(read_weights(&path, WeightRole::Trunk)?))
            }
            TrunkWeights::Tensors(tensors) => TrunkSource::Map(Box::new(TensorMap::from_tensors(
                tensors,
                "the given tensors",
            ))),
            TrunkWeights::PythonEnv(path) => {
                return Err(LpipsError::Conflict {
                    reason: format!(
                        "TrunkWeights::PythonEnv({}) serves published whole models \
                         (Variant::ShiftTolerant); the {net} trunk of plain LPIPS is \
                         torchvision's checkpoint",
                        path.display()
                    ),
                });
            }
            TrunkWeights::RandomInit => TrunkSource::RandomInit,
        };
        Ok(Sources {
            whole,
            trunk,
            heads,
        })
    }

    /// The loaded trunk in the precision, layout and convolution path it runs with,
    /// frozen: gradients reach the inputs only.
    fn prepare_trunk(&self, trunk: Trunk, device: Device) -> Result<Trunk> {
        let trunk = match self.precision {
            Precision::F32 => trunk,
            other => trunk.to_kind(other.kind())?,
        };
        // Channels-last weights and activations: oneDNN then convolves and pools without
        // reordering; measured 1.2x (alex) to 1.8x (squeeze) faster at 256x256 on CPU.
        let trunk = trunk.to_channels_last()?;
        // Winograd filters for the CPU's f32 passes without gradients (`winograd`).
        let trunk =
            if !self.no_winograd && device == Device::Cpu && self.precision == Precision::F32 {
                trunk.with_winograd(self.winograd_everywhere)?
            } else {
                trunk
            };
        for t in trunk.tensors() {
            let _ = t.f_set_requires_grad(false)?;
        }
        Ok(trunk)
    }

    /// Step two: the linear heads, from the heads file, the whole model or the embedded
    /// ones, on `device` and frozen; `None` without heads.
    fn load_heads(
        &self,
        spec: &TrunkSpec,
        sources: &mut Sources,
        device: Device,
    ) -> Result<Option<Vec<tch::Tensor>>> {
        let (net, variant) = (self.net, self.variant);
        let heads = match (self.heads, sources.heads.as_mut(), sources.whole.as_mut()) {
            (Heads::Learned, Some(map), _) => weights::heads_from(net, map)?,
            (Heads::Learned, None, Some(whole)) => std::mem::take(&mut whole.heads),
            (Heads::Learned, None, None) if matches!(spec.holds, Holds::WholeModel { .. }) => {
                return Err(LpipsError::Conflict {
                    reason: format!(
                        "the {variant} {net} model's heads come with its published file, \
                         and a randomly initialised trunk has none: give a heads file \
                         (`LpipsBuilder::heads_file`), or no heads (`Heads::None`)"
                    ),
                });
            }
            (Heads::Learned, None, None) => weights::linear_heads(net, self.version)?,
            (Heads::None, _, _) => return Ok(None),
        };
        let heads = heads
            .into_iter()
            .map(|w| Ok(w.f_to_device(device)?.f_set_requires_grad(false)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(heads))
    }

    /// Step three: the input scaling of v0.1 (a whole model's own, else the reference's);
    /// none for v0.0.
    fn scaling(&self, sources: &Sources, device: Device) -> Result<Option<ScalingLayer>> {
        Ok(match (self.version, &sources.whole) {
            (Version::V0_1, Some(whole)) => Some(ScalingLayer::from_tensors(
                &whole.shift,
                &whole.scale,
                device,
            )?),
            (Version::V0_1, None) => Some(ScalingLayer::new(device)?),
            (Version::V0_0, _) => None,
        })
    }

    /// The memory budget tiling keeps to, and where it came from.
    fn memory_budget(&self) -> Option<(u64, &'static str)> {
        match self.max_memory {
            Some(bytes) => Some((bytes, "max_memory")),
            None => super::tiling::mem_available().map(|bytes| {
                (
                    bytes / 10 * 9,
                    "90% of MemAvailable when the model was built",
                )
            }),
        }
    }

    /// The whole-model file to read, if the model comes from one: the
    /// [`model_file`](Self::model_file), or a published model's file as the trunk source
    /// says. Otherwise gives the trunk source back.
    fn whole_model_source(
        &mut self,
        spec: &TrunkSpec,
        trunk: TrunkWeights,
    ) -> Result<std::result::Result<TensorMap, TrunkWeights>> {
        if let Some(path) = &self.model_file {
            if !matches!(trunk, TrunkWeights::Auto) {
                return Err(LpipsError::Conflict {
                    reason: format!(
                        "a whole-model file ({}) replaces the trunk source: give \
                         `LpipsBuilder::model_file` or `LpipsBuilder::trunk`, not both",
                        path.display()
                    ),
                });
            }
            return Ok(Ok(read_weights(path, WeightRole::Model)?));
        }
        if !matches!(spec.holds, Holds::WholeModel { .. }) {
            return Ok(Err(trunk));
        }
        let (net, variant) = (self.net, self.variant);
        let published = PublishedFile::whole_model(net, variant)
            .ok_or(LpipsError::NoSuchVariant { net, variant })?;
        let path = match trunk {
            TrunkWeights::Auto => self.with_progress(|progress| published.resolve(progress))?,
            TrunkWeights::File(path) => {
                return Ok(Ok(read_weights(&path, WeightRole::PublishedModel)?));
            }
            TrunkWeights::PythonEnv(env) => published.in_python_env(&env)?,
            TrunkWeights::Tensors(tensors) => {
                return Ok(Ok(TensorMap::from_tensors(tensors, "the given tensors")));
            }
            TrunkWeights::RandomInit => return Ok(Err(TrunkWeights::RandomInit)),
        };
        Ok(Ok(weights::read_trunk_file(&path)?))
    }
}

/// Where the trunk's weights come from, once the settings are resolved.
enum TrunkSource {
    /// The whole model's file ([`Sources::whole`]).
    WholeModel,
    /// A trunk file or tensors of its own.
    Map(Box<TensorMap>),
    /// The heads file, which holds a trunk too (a `--tune` or `--scratch` run).
    HeadsFile,
    /// None: torchvision's initialisation of an untrained trunk.
    RandomInit,
}

/// The weight sources a model is built from.
struct Sources {
    whole: Option<weights::whole_model::WholeModel>,
    trunk: TrunkSource,
    heads: Option<TensorMap>,
}

impl Sources {
    /// Copies the trunk's weights into its variables `vs`, every one checked first.
    fn load_trunk(&mut self, vs: &nn::VarStore, net: Net) -> Result<()> {
        let loaded = match (self.whole.as_mut(), &mut self.trunk) {
            (Some(whole), _) => std::mem::take(&mut whole.trunk),
            (None, TrunkSource::Map(source)) => weights::trunk_tensors(&vs.variables(), source)
                .map_err(|e| another_net(e, net, source))?,
            (None, TrunkSource::HeadsFile) => match self.heads.as_mut() {
                Some(source) => weights::trunk_tensors(&vs.variables(), source)
                    .map_err(|e| another_net(e, net, source))?,
                None => return Ok(()),
            },
            (None, TrunkSource::WholeModel | TrunkSource::RandomInit) => return Ok(()),
        };
        let mut vars = vs.variables();
        for (name, tensor) in loaded {
            if let Some(var) = vars.get_mut(&name) {
                var.f_copy_(&tensor)?;
            }
        }
        Ok(())
    }
}

/// Reads a weight file the caller named; a file that cannot be opened is named as the
/// builder's `role` file, with the builder call that points at it.
fn read_weights(path: &std::path::Path, role: WeightRole) -> Result<TensorMap> {
    weights::read_trunk_file(path).map_err(|e| match e {
        LpipsError::Io { path, source } => LpipsError::WeightFileOpen { role, path, source },
        e => e,
    })
}

/// A trunk source the model cannot use: when it holds a whole `lpips.LPIPS` model or
/// another net's trunk, says so.
fn another_net(e: LpipsError, net: Net, source: &TensorMap) -> LpipsError {
    match e {
        LpipsError::Weights {
            problem: WeightProblem::Missing { .. } | WeightProblem::Shape { .. },
            ..
        } => {
            if source.names().iter().any(|n| n.starts_with("net.slice")) {
                return WeightProblem::WholeModelAsTrunk.at(&source.source_name);
            }
            match weights::other_trunk(net, source) {
                Some(found) => WeightProblem::OtherNet { net, found }.at(&source.source_name),
                None => e,
            }
        }
        e => e,
    }
}
