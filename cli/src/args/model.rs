//! The model options every measuring command shares: trunk, variant, heads, weight
//! files, device.

use std::ffi::OsStr;
use std::path::PathBuf;

use clap::builder::{PossibleValue, TypedValueParser};
use lpips::weights::TrunkWeights;
use lpips::{Lin, Lpips, LpipsError, Net, Variant};

use crate::error::CliError;

/// The model options every measuring command shares.
#[derive(clap::Args)]
pub(crate) struct ModelArgs {
    /// Trunk network.
    #[arg(long, default_value = "alex", value_parser = NetParser)]
    pub(crate) net: Net,
    /// lpips (Zhang et al. 2018), or shift-tolerant: ST-LPIPS (Ghildyal and Liu, ECCV
    /// 2022), alex or vgg, with its authors' published weights (trunk and heads in one
    /// file: from --python-env or LPIPS_STLPIPS_PYTHON, else
    /// $TORCH_HOME/hub/checkpoints/stlpips/, else a verified download there; --trunk FILE
    /// for a file of your own).
    #[arg(long, default_value = "lpips", value_parser = parse_variant)]
    pub(crate) variant: Variant,
    /// A whole model in one torch.save file (an lpips.LPIPS state dict: trunk, heads and
    /// scaling layer), loaded strictly: instead of --trunk and the embedded heads.
    #[arg(long, conflicts_with = "trunk")]
    pub(crate) model: Option<PathBuf>,
    /// With --variant shift-tolerant: a Python environment (python executable, virtualenv
    /// folder or site-packages) with stlpips-pytorch installed, whose weight files are used
    /// (checked against the published SHA-256).
    #[arg(long, conflicts_with_all = ["trunk", "model"])]
    pub(crate) python_env: Option<PathBuf>,
    /// Linear heads: v0.1 (default), v0.0 (original release, no input scaling), none
    /// (uncalibrated baseline), or a heads file written by `lpips train`.
    #[arg(long, default_value = "v0.1", value_parser = parse_lin)]
    pub(crate) lin: LinArg,
    /// Trunk weights: a torch.save checkpoint (.pth/.pt) or .safetensors with
    /// torchvision's names (with --variant shift-tolerant: the whole model's file, as
    /// published); default: the torch hub cache, else a verified download.
    #[arg(long)]
    pub(crate) trunk: Option<PathBuf>,
    /// cpu, cuda, cuda:N, mps or auto.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// Run every convolution with libtorch's direct kernels: no Winograd F(4x4, 3x3) for
    /// the 3x3 layers on the CPU (which is faster, and differs by about 1e-6 relative;
    /// for results equal bit for bit to earlier versions).
    #[arg(long)]
    pub(crate) no_winograd: bool,
}

impl ModelArgs {
    pub(crate) fn device(&self) -> Result<lpips::Device, CliError> {
        Ok(lpips::runtime::parse_device(&self.device)?)
    }

    /// The weight files the model is read from, where they exist: the trunk, heads and
    /// whole-model files named on the command line, else the hub cache's (or the Python
    /// environment's) file that the library would take. No output may replace them.
    pub(crate) fn input_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = [&self.trunk, &self.model]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if let LinArg::File(path) = &self.lin {
            files.push(path.clone());
        }
        if self.trunk.is_none() && self.model.is_none() {
            match lpips::weights::PublishedFile::whole_model(self.net, self.variant) {
                Some(published) => {
                    let env = self.python_env.clone().or_else(|| {
                        std::env::var_os(lpips::weights::STLPIPS_PYTHON_ENV).map(PathBuf::from)
                    });
                    files.extend(env.and_then(|env| published.in_python_env(&env).ok()));
                    files.extend(published.cache_path());
                }
                None => files.extend(lpips::weights::find_cached(self.net).ok()),
            }
        }
        files
    }

    /// The model: trunk from the given file, else the usual resolution.
    pub(crate) fn build(&self) -> Result<Lpips, CliError> {
        Ok(self.builder()?.build()?)
    }

    /// The model's builder, for settings beyond these.
    pub(crate) fn builder(&self) -> Result<lpips::LpipsBuilder, CliError> {
        if let (Some(env), Variant::Lpips) = (&self.python_env, self.variant) {
            return Err(CliError::Usage(format!(
                "--python-env {}: serves ST-LPIPS' published models, so it needs \
                 --variant shift-tolerant; plain LPIPS takes its trunk from --trunk or \
                 torchvision's checkpoint",
                env.display()
            )));
        }
        let builder = Lpips::builder().net(self.net).variant(self.variant);
        let builder = match &self.model {
            Some(path) => builder.model_file(path),
            None => builder,
        };
        let builder = match &self.lin {
            LinArg::Builtin(lin) => builder.lin(*lin),
            LinArg::File(path) => builder.heads_file(path),
        };
        Ok(builder
            .device(self.device()?)
            .winograd(!self.no_winograd)
            .trunk(match (&self.trunk, &self.python_env) {
                (Some(file), _) => TrunkWeights::File(file.clone()),
                (None, Some(env)) => TrunkWeights::PythonEnv(env.clone()),
                (None, None) => TrunkWeights::Auto,
            })
            .download_progress(crate::terminal::download_bar()))
    }
}

/// `--lin`: the embedded heads by release, none, or a heads file (from `lpips train`).
#[derive(Clone, Debug)]
pub(crate) enum LinArg {
    Builtin(Lin),
    File(PathBuf),
}

impl serde::Serialize for LinArg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LinArg::Builtin(lin) => lin.serialize(s),
            LinArg::File(path) => path.serialize(s),
        }
    }
}

/// A trunk argument: parsed as the library parses it (its aliases, its error message),
/// with `Net::ALL`'s names as clap's possible values, so that help and shell completions
/// list the trunks there are.
#[derive(Clone, Copy)]
pub(crate) struct NetParser;

impl TypedValueParser for NetParser {
    type Value = Net;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Net, clap::Error> {
        let parse: fn(&str) -> Result<Net, LpipsError> = str::parse;
        parse.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            Net::ALL
                .into_iter()
                .map(|net| PossibleValue::new(net.name())),
        ))
    }
}

fn parse_variant(s: &str) -> Result<Variant, LpipsError> {
    s.parse()
}

fn parse_lin(s: &str) -> Result<LinArg, CliError> {
    if let Ok(lin) = s.parse::<Lin>() {
        return Ok(LinArg::Builtin(lin));
    }
    let path = PathBuf::from(s);
    if path.is_file() {
        Ok(LinArg::File(path))
    } else {
        Err(CliError::Usage(format!(
            "`{s}` is neither v0.1, v0.0, none nor a heads file (from `lpips train`)"
        )))
    }
}
