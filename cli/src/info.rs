//! `lpips info`: the library's [`lpips::runtime::info`] facts, as text or JSON.

use crate::args::Format;
use crate::error::{CliError, Context};

pub fn run(format: Format, verify: bool) -> Result<(), CliError> {
    let info = lpips::runtime::info(verify);
    if let Format::Json = format {
        let mut value = serde_json::to_value(&info).context("cannot write the output")?;
        if let Some(fields) = value.as_object_mut() {
            fields.insert(
                "openmp_wait_policy".into(),
                crate::openmp::describe().into(),
            );
        }
        let text = serde_json::to_string_pretty(&value).context("cannot write the output")?;
        return crate::terminal::print_line(&text);
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut lines = vec![
        format!("lpips {}", info.lpips_version),
        format!(
            "libtorch {} ({})",
            info.libtorch_version.unwrap_or("version unknown"),
            info.libtorch_lib.unwrap_or("folder unknown")
        ),
        format!(
            "CUDA: support loaded {}, available {}, {} device(s), cuDNN {}",
            yes_no(info.cuda_compiled),
            yes_no(info.cuda_available),
            info.cuda_devices,
            yes_no(info.cudnn_available)
        ),
        format!("MPS: {}", yes_no(info.mps_available)),
        format!("threads: {}", info.threads),
        format!("OpenMP wait policy: {}", crate::openmp::describe()),
        format!(
            "weight cache: {}",
            info.hub_dir
                .as_ref()
                .map_or("none (no TORCH_HOME, XDG_CACHE_HOME or HOME)".into(), |d| d
                    .display()
                    .to_string())
        ),
    ];
    for t in &info.trunks {
        let state = match (&t.path, t.verified) {
            (None, _) => "not in the cache".to_string(),
            (Some(p), Some(true)) => format!("{} (SHA-256 verified)", p.display()),
            (Some(p), Some(false)) => format!("{} (SHA-256 MISMATCH: delete it)", p.display()),
            (Some(p), None) => format!("{} (not verified)", p.display()),
        };
        lines.push(format!("  {}: {state}", t.net));
    }
    crate::terminal::print_line(&lines.join("\n"))
}
