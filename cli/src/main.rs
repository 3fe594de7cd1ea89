//! The `lpips` command-line tool.

mod eval;
mod folders;
mod info;
mod measure;
mod openmp;
mod outputs;
mod signals;
mod terminal;
mod train;
mod weights;

pub(crate) use terminal::{outln, progress_bar};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use lpips::weights::TrunkWeights;
use lpips::{Lin, Lpips, LpipsError, Net, Variant};

#[derive(Parser)]
#[command(
    name = "lpips",
    version,
    about = "LPIPS perceptual image distance (Zhang et al., CVPR 2018)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Distance between two images of the same size (lower is more similar).
    #[command(
        after_help = "Examples:\n  lpips compare a.png b.png\n  lpips compare a.png b.png --net vgg --format json\n  lpips compare a.png b.png --trunk alexnet.safetensors --spatial-out map.png\n  lpips compare a.png b.png --variant shift-tolerant --net vgg   # ST-LPIPS\n  lpips compare a.png b.png --model lpips_alex_tuned.pth         # whole lpips.LPIPS state dict"
    )]
    Compare(CompareArgs),
    /// The trunks' ImageNet weights: list, fetch, verify, convert.
    #[command(
        subcommand,
        after_help = "Examples:\n  lpips weights list\n  lpips weights fetch alex\n  lpips weights verify\n  lpips weights convert alexnet-owt-7be5be79.pth alex.safetensors"
    )]
    Weights(weights::WeightsCommand),
    /// Pairs of files with the same name in two folders (like the reference's lpips_2dirs.py).
    #[command(
        after_help = "Examples:\n  lpips dirs originals/ outputs/\n  lpips dirs a/ b/ --format csv --out results.csv --recursive\n  lpips dirs a/ b/ --shard 2/8 --format jsonl --out part-2.jsonl   # 8 jobs, one each\n  lpips dirs a/ b/ --spatial-dir maps/ --spatial-format npy"
    )]
    Dirs {
        /// First folder.
        dir0: PathBuf,
        /// Second folder.
        dir1: PathBuf,
        #[command(flatten)]
        args: folders::FolderArgs,
    },
    /// Every unordered pair of images in a folder (like lpips_1dir_allpairs.py); each
    /// image's features are computed once.
    #[command(
        after_help = "Examples:\n  lpips all-pairs samples/\n  lpips all-pairs samples/ --format json --out pairs.json"
    )]
    AllPairs {
        /// The folder.
        dir: PathBuf,
        #[command(flatten)]
        args: folders::FolderArgs,
    },
    /// One reference image against many (folders or files); its features are computed once.
    #[command(
        after_help = "Examples:\n  lpips ref target.png outputs/\n  lpips ref target.png a.png b.png c.png --format csv"
    )]
    Ref {
        /// The reference image.
        reference: PathBuf,
        /// Folders and image files to compare with it.
        #[arg(required = true)]
        targets: Vec<PathBuf>,
        #[command(flatten)]
        args: folders::FolderArgs,
    },
    /// What this lpips runs on: libtorch, CUDA/MPS devices, threads, the weight cache.
    /// The first thing to run when a set-up misbehaves.
    #[command(after_help = "Examples:\n  lpips info\n  lpips info --verify --format json")]
    Info {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also check the SHA-256 of each cached torchvision checkpoint.
        #[arg(long)]
        verify: bool,
    },
    /// BAPPS scores as in the paper: 2AFC and JND, for LPIPS and the L2/SSIM baselines.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Train linear heads (and optionally the trunk) on BAPPS 2AFC data, with the
    /// reference's recipe.
    #[command(
        after_help = "Examples:\n  lpips train dataset/2afc/train --out checkpoints/alex-lin\n  lpips train dataset/2afc/train --net vgg --tune --out checkpoints/vgg-tune --val dataset/2afc/val\n  lpips train dataset/2afc/train --resume checkpoints/alex-lin/latest.safetensors --out checkpoints/alex-lin\n  lpips eval 2afc dataset/2afc/val --lin checkpoints/alex-lin/latest.safetensors"
    )]
    Train(train::TrainArgs),
    /// Print a shell completion script: `lpips completions bash > /etc/bash_completion.d/lpips`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args)]
struct CompareArgs {
    /// First image.
    img0: PathBuf,
    /// Second image.
    img1: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    measure: measure::MeasureArgs,
    /// Also write the spatial distance map: `.npy` (float32 H x W) or `.png` (heat map);
    /// with --mask, NaN (npy) or transparent (png) where the mask is black.
    #[arg(long)]
    spatial_out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// The model options every measuring command shares.
#[derive(clap::Args)]
pub(crate) struct ModelArgs {
    /// Trunk network.
    #[arg(long, default_value = "alex", value_parser = parse_net)]
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
    pub(crate) fn device(&self) -> Result<lpips::Device, String> {
        lpips::runtime::parse_device(&self.device).map_err(|e| e.to_string())
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
    pub(crate) fn build(&self) -> Result<Lpips, String> {
        self.builder()?.build().map_err(cli_error)
    }

    /// The model's builder, for settings beyond these.
    pub(crate) fn builder(&self) -> Result<lpips::LpipsBuilder, String> {
        if let (Some(env), Variant::Lpips) = (&self.python_env, self.variant) {
            return Err(format!(
                "--python-env {}: serves ST-LPIPS' published models, so it needs \
                 --variant shift-tolerant; plain LPIPS takes its trunk from --trunk or \
                 torchvision's checkpoint",
                env.display()
            ));
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
            .download_progress(terminal::download_bar()))
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
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

pub(crate) fn parse_net(s: &str) -> Result<Net, String> {
    s.parse().map_err(|e: LpipsError| e.to_string())
}

pub(crate) fn parse_variant(s: &str) -> Result<Variant, String> {
    s.parse().map_err(|e: LpipsError| e.to_string())
}

pub(crate) fn parse_lin(s: &str) -> Result<LinArg, String> {
    if let Ok(lin) = s.parse::<Lin>() {
        return Ok(LinArg::Builtin(lin));
    }
    let path = PathBuf::from(s);
    if path.is_file() {
        Ok(LinArg::File(path))
    } else {
        Err(format!(
            "`{s}` is neither v0.1, v0.0, none nor a heads file (from `lpips train`)"
        ))
    }
}

/// A library error as the command line says it: with the flags that fix it, never the
/// library calls that the library's own messages name.
pub(crate) fn cli_error(e: LpipsError) -> String {
    let files = |searched: &[PathBuf], none: &str| {
        if searched.is_empty() {
            none.to_string()
        } else {
            searched
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        }
    };
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
            files(
                &searched,
                "no torch hub cache folder (no TORCH_HOME, XDG_CACHE_HOME or HOME)"
            ),
            lpips::weights::PublishedFile::torchvision(net).file_name
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
            files(&searched, "no cache folder"),
            lpips::weights::STLPIPS_PYTHON_ENV
        ),
        LpipsError::CorruptImage { path, reason } => format!(
            "cannot read image {}: {reason} (a damaged file: refused, and no option of \
             `lpips` accepts it; re-encode it with a tool that keeps what can be decoded, \
             or replace it)",
            path.display()
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
        LpipsError::WeightFileOpen { role, path, source } => {
            let flag = match role {
                lpips::weights::WeightRole::Heads => "--lin FILE",
                lpips::weights::WeightRole::Model => "--model FILE",
                _ => "--trunk FILE",
            };
            format!(
                "cannot open the {role} file {}: {source}; point {flag} at it",
                path.display()
            )
        }
        LpipsError::TrunkOfAnotherNet {
            net,
            found,
            source_name,
        } => format!(
            "{source_name} holds the {found} trunk, but the model is {net}: pass `--net {found}`, \
             or give the {net} trunk's file with `--trunk FILE`"
        ),
        LpipsError::NotAWholeModel {
            source_name,
            published: Some(file),
        } => format!(
            "{source_name} holds a torchvision trunk only, but ST-LPIPS is published as one \
             whole-model file, {file}: pass it with `--trunk FILE`, name a Python environment \
             with stlpips-pytorch installed (`--python-env DIR`), or let it be downloaded"
        ),
        LpipsError::NotAWholeModel {
            source_name,
            published: None,
        } => format!(
            "{source_name} holds a torchvision trunk only, but --model reads a whole \
             lpips.LPIPS state dict: pass this file with `--trunk FILE` instead"
        ),
        e => e.to_string(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    terminal::init_logger();
    if let Command::Train(_) = cli.command {
        openmp::passive_for_training();
    }
    // Keeps freed activation memory for the next batch (see the function's docs).
    lpips::runtime::tune_cpu_allocator();
    let result = match cli.command {
        Command::Compare(args) => compare(args),
        Command::Weights(command) => weights::run(command),
        Command::Dirs { dir0, dir1, args } => folders::run(folders::Mode::Dirs(dir0, dir1), args),
        Command::AllPairs { dir, args } => folders::run(folders::Mode::AllPairs(dir), args),
        Command::Ref {
            reference,
            targets,
            args,
        } => folders::run(folders::Mode::Ref(reference, targets), args),
        Command::Eval(command) => eval::run(command),
        Command::Info { format, verify } => info::run(format, verify),
        Command::Train(args) => train::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "lpips", &mut script);
            terminal::print_bytes(&script)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lpips: error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum SpatialKind {
    Npy,
    Png,
}

fn spatial_kind(path: &std::path::Path) -> Result<SpatialKind, String> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("npy") => Ok(SpatialKind::Npy),
        Some("png") => Ok(SpatialKind::Png),
        _ => Err(format!(
            "--spatial-out {}: the name must end in .npy or .png",
            path.display()
        )),
    }
}

fn compare(args: CompareArgs) -> Result<(), String> {
    let spatial = args.spatial_out.as_deref().map(spatial_kind).transpose()?;
    if let Some(path) = &args.spatial_out {
        let inputs = [&args.img0, &args.img1]
            .into_iter()
            .chain(&args.measure.mask)
            .map(PathBuf::as_path);
        outputs::Inputs::new(inputs)
            .with_model(&args.model)
            .check_file("--spatial-out", path, outputs::Stdout::NotAccepted)?;
    }
    args.model.device()?;
    // The reference's pixels: 16-bit files reduced to 8 bits as OpenCV does.
    let a = lpips::load_image_8bit(&args.img0).map_err(cli_error)?;
    let b = lpips::load_image_8bit(&args.img1).map_err(cli_error)?;
    if (a.width(), a.height()) != (b.width(), b.height()) {
        return Err(format!(
            "images differ in size: {} is {}x{}, {} is {}x{} (WxH)",
            args.img0.display(),
            a.width(),
            a.height(),
            args.img1.display(),
            b.width(),
            b.height()
        ));
    }
    let weights = args.measure.weights_for_compare()?;
    let model = args
        .measure
        .apply(args.model.builder()?)
        .build()
        .map_err(cli_error)?;
    let err = cli_error;
    if spatial.is_some() {
        // The map needs more memory than the distance: fail now, not after the distance.
        model
            .tile_size(1, i64::from(a.height()), i64::from(a.width()), true)
            .map_err(err)?;
    }
    let distance = match &weights {
        Some(w) => model.distance_weighted(&a, &b, w).map_err(err)?,
        None if args.measure.map_mean => {
            let map = model.distance_map(&a, &b).map_err(err)?;
            (map.iter().map(|&v| f64::from(v)).sum::<f64>() / map.len() as f64) as f32
        }
        None => model.distance(&a, &b).map_err(err)?,
    };
    if !distance.is_finite() {
        return Err(format!(
            "the distance between {} and {} is {distance} (not finite): the model overflowed",
            args.img0.display(),
            args.img1.display()
        ));
    }
    let mut spatial_max = None;
    if let (Some(path), Some(kind)) = (&args.spatial_out, spatial) {
        let mut map = model.distance_map(&a, &b).map_err(cli_error)?;
        if let Some(w) = &weights {
            lpips::maps::mask_map(&mut map, w).map_err(err)?;
        }
        match kind {
            SpatialKind::Npy => lpips::maps::write_npy(path, &map)
                .map_err(|e| format!("cannot write the distance map: {e}"))?,
            SpatialKind::Png => {
                spatial_max = Some(
                    lpips::maps::write_heatmap(path, &map, None)
                        .map_err(|e| format!("cannot write the heat map: {e}"))?,
                );
            }
        }
    }
    match args.format {
        Format::Text => {
            outln!("{distance}");
            if let (Some(path), Some(max)) = (&args.spatial_out, spatial_max) {
                eprintln!("heat map {}: colour scale 0 to {max}", path.display());
            }
        }
        Format::Json => {
            let out = serde_json::json!({
                "distance": distance,
                "img0": args.img0,
                "img1": args.img1,
                "net": args.model.net,
                "variant": args.model.variant,
                "lin": args.model.lin,
                "mask": args.measure.mask,
                "pixel_range": args.measure.pixel_range,
                "map_mean": args.measure.map_mean,
                "spatial_out": args.spatial_out,
                "spatial_scale_max": spatial_max,
            });
            outln!("{out}");
        }
    }
    Ok(())
}
