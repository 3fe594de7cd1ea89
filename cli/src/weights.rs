//! `lpips weights ...`: what is in the torch hub cache, fetching, verifying, converting.

use std::path::PathBuf;

use clap::Subcommand;
use lpips::Net;
use lpips::weights::PublishedFile;

use crate::args::{Format, NetParser};
use crate::error::CliError;
use crate::terminal::outln;

#[derive(Subcommand)]
pub enum WeightsCommand {
    /// Each trunk: where its weights are, their size, whether their SHA-256 is torchvision's.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Download trunks into the torch hub cache, verified (default: all).
    Fetch {
        /// Trunks to download (default: all).
        #[arg(value_parser = NetParser)]
        nets: Vec<Net>,
    },
    /// Check cached trunks against torchvision's published SHA-256 (default: all found).
    Verify {
        /// Trunks to check (default: all those in the cache).
        #[arg(value_parser = NetParser)]
        nets: Vec<Net>,
    },
    /// Write a checkpoint's trunk tensors as safetensors (torchvision's names, f32).
    Convert {
        /// A .pth/.pt checkpoint (zip or legacy format) or a safetensors file.
        input: PathBuf,
        /// The .safetensors file to write.
        output: PathBuf,
        /// The trunk (default: recognised from the tensors).
        #[arg(long, value_parser = NetParser)]
        net: Option<Net>,
    },
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

enum Check {
    Verified,
    Mismatch(String),
    NoDigest,
}

fn check(file: &PublishedFile, path: &std::path::Path) -> Result<Check, CliError> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        return Ok(Check::NoDigest);
    }
    let found = lpips::weights::sha256_file(path)?;
    Ok(if found == file.sha256 {
        Check::Verified
    } else {
        Check::Mismatch(found)
    })
}

pub fn run(command: WeightsCommand) -> Result<(), CliError> {
    match command {
        WeightsCommand::List { format } => list(format),
        WeightsCommand::Fetch { nets } => fetch(nets),
        WeightsCommand::Verify { nets } => verify(nets),
        WeightsCommand::Convert { input, output, net } => {
            crate::outputs::Inputs::new([input.as_path()]).check_file(
                "OUTPUT",
                &output,
                crate::outputs::Stdout::NotAccepted,
            )?;
            let net = lpips::weights::convert_trunk(&input, &output, net)?;
            outln!("wrote {} ({net} trunk)", output.display());
            Ok(())
        }
    }
}

/// `weights fetch`: each trunk named (default: all) downloaded unless cached.
fn fetch(nets: Vec<Net>) -> Result<(), CliError> {
    let nets = if nets.is_empty() {
        Net::ALL.to_vec()
    } else {
        nets
    };
    let mut failures = Vec::new();
    for &net in &nets {
        let cached = lpips::weights::find_cached(net).ok();
        match lpips::weights::fetch(net, &mut crate::terminal::download_bar()) {
            Ok(path) if cached.is_some() => {
                outln!("{net}: already in the cache: {}", path.display())
            }
            Ok(path) => outln!("{net}: downloaded and verified: {}", path.display()),
            Err(e) => failures.push(format!("{net}: {}", crate::error::worded(&e))),
        }
    }
    finish(failures, nets.len())
}

/// `weights verify`: each cached trunk named (default: all found) against its digest.
fn verify(nets: Vec<Net>) -> Result<(), CliError> {
    let named = !nets.is_empty();
    let nets = if named { nets } else { Net::ALL.to_vec() };
    let mut failures = Vec::new();
    for &net in &nets {
        let file = PublishedFile::torchvision(net);
        match lpips::weights::find_cached(net) {
            Err(_) if named => failures.push(format!("{net}: not in the torch hub cache")),
            Err(_) => outln!("{net}: not in the cache"),
            Ok(path) => match check(&file, &path)? {
                Check::Verified => outln!("{net}: ok {}", path.display()),
                Check::NoDigest => outln!(
                    "{net}: {} is a conversion: no published digest",
                    path.display()
                ),
                Check::Mismatch(found) => failures.push(format!(
                    "{net}: SHA-256 mismatch for {}: expected {}, got {found}",
                    path.display(),
                    file.sha256
                )),
            },
        }
    }
    finish(failures, nets.len())
}

fn list(format: Format) -> Result<(), CliError> {
    let mut rows = Vec::new();
    for net in Net::ALL {
        let file = PublishedFile::torchvision(net);
        let row = match lpips::weights::find_cached(net) {
            Ok(path) => {
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let status = match check(&file, &path)? {
                    Check::Verified => "verified".to_string(),
                    Check::NoDigest => "conversion (no published digest)".to_string(),
                    Check::Mismatch(_) => "SHA-256 MISMATCH".to_string(),
                };
                serde_json::json!({"net": net, "path": path, "bytes": bytes, "status": status})
            }
            Err(_) => serde_json::json!({
                "net": net,
                "path": null,
                "bytes": null,
                "status": format!("not found (download: {}, {})", file.url(), mib(file.bytes)),
            }),
        };
        rows.push(row);
    }
    match format {
        Format::Json => outln!("{}", serde_json::Value::Array(rows)),
        Format::Text => {
            if let Some(dir) = lpips::weights::hub_checkpoint_dir() {
                outln!("torch hub cache: {}", dir.display());
            }
            for r in rows {
                let path = r["path"].as_str().map(str::to_string).unwrap_or_default();
                let size = r["bytes"].as_u64().map(mib).unwrap_or_default();
                outln!(
                    "{:<8} {:<10} {} {}",
                    r["net"].as_str().unwrap_or(""),
                    size,
                    r["status"].as_str().unwrap_or(""),
                    path
                );
            }
        }
    }
    Ok(())
}

/// One failure is the error itself; several are listed, then summed up.
fn finish(failures: Vec<String>, total: usize) -> Result<(), CliError> {
    let mut failures = failures.into_iter();
    match (failures.next(), failures.len()) {
        (None, _) => Ok(()),
        (Some(only), 0) => Err(CliError::Input(only)),
        (Some(first), rest) => {
            for f in std::iter::once(first).chain(failures) {
                eprintln!("lpips: error: {f}");
            }
            Err(CliError::Failed {
                failed: rest + 1,
                total,
                what: "trunks",
            })
        }
    }
}
