//! The `lpips` command-line tool: the commands and their dispatch. Each command lives
//! in its own module (`compare`, `folders` for dirs/all-pairs/ref, `eval`, `train`,
//! `weights`, `info`); the options several share are in `args`, the one error type in
//! `error`.

mod args;
mod compare;
mod error;
mod eval;
mod folders;
mod info;
mod openmp;
mod outputs;
mod signals;
mod terminal;
mod train;
mod weights;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::args::Format;
use crate::error::CliError;

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
    Compare(compare::CompareArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    terminal::init_logger();
    if let Command::Train(_) = cli.command {
        openmp::passive_for_training();
    }
    // Keeps freed activation memory for the next batch (see the function's docs).
    lpips::runtime::tune_cpu_allocator();
    huge_pages();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.is_reported() {
                eprintln!("lpips: error: {e}");
            }
            e.exit_code()
        }
    }
}

/// The variable by which libtorch's CPU allocator backs allocations of 2 MiB and more
/// with transparent huge pages (aligned, `madvise(MADV_HUGEPAGE)`); it reads it once, at
/// its first allocation.
const HUGE_PAGES: &str = "THP_MEM_ALLOC_ENABLE";

/// Large activations on huge pages, unless the user chose: a fresh 4 KiB page costs a
/// page fault on first touch, and on large inputs those faults took a quarter of the
/// time (VGG 256x256 batch 8: 1.62 -> 1.31 s; docs/benchmarks.md, "Huge pages").
fn huge_pages() {
    if std::env::var_os(HUGE_PAGES).is_none() {
        // SAFETY: called from `main` before any thread is started (neither clap nor the
        // logger starts one) and before libtorch's first allocation, so nothing reads
        // the environment concurrently.
        unsafe { std::env::set_var(HUGE_PAGES, "1") };
    }
}

/// Runs one command.
fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Compare(args) => compare::run(args),
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
    }
}
