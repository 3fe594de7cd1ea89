// libtorch is a shared library: a binary must find it when it starts. torch-sys tells
// only the crates that depend on it directly where it is (DEP_TCH_LIBTORCH_LIB), hence
// torch-sys as a direct dependency. This script
// - embeds that folder as an rpath in this crate's own tests, examples and benches;
// - passes it on, through `links = "lpips"`, to the build scripts of crates that depend
//   on this one (DEP_LPIPS_LIBTORCH_LIB, and DEP_LPIPS_CUDA = 1 when that libtorch has
//   libtorch_cuda), which is the one step a downstream binary needs
//   (examples/downstream/build.rs).
use std::path::Path;

fn main() {
    // The Winograd products' AVX-512 intrinsics are stable from Rust 1.89; the crate's
    // MSRV is older, so older compilers get libtorch's SGEMM instead.
    println!("cargo:rustc-check-cfg=cfg(lpips_avx512)");
    if rustc_minor().is_some_and(|minor| minor >= 89) {
        println!("cargo:rustc-cfg=lpips_avx512");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // tch's doc-only build (docs.rs) has no libtorch.
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let cuda = Path::new(&lib).join("libtorch_cuda.so").is_file();
    // For `lpips::runtime::info()`: what this build was linked against.
    println!("cargo:rustc-env=LPIPS_LIBTORCH_LIB={lib}");
    if let Some(version) = libtorch_version(Path::new(&lib)) {
        println!("cargo:rustc-env=LPIPS_LIBTORCH_VERSION={version}");
    }
    println!("cargo:libtorch_lib={lib}");
    println!("cargo:cuda={}", u8::from(cuda));
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "macos" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    if cuda && os == "linux" {
        // Nothing in Rust code calls into libtorch_cuda, so the linker's --as-needed
        // would drop it and CUDA would never register: keep it.
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// The version of the libtorch in `lib`'s parent: a Python wheel's `version.py`, a
/// libtorch archive's `build-version`, else the major.minor.patch of its headers.
fn libtorch_version(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        let line = text.lines().find(|l| l.starts_with("__version__"))?;
        return Some(line.split(['\'', '"']).nth(1)?.to_string());
    }
    if let Ok(text) = std::fs::read_to_string(root.join("build-version")) {
        return Some(text.trim().to_string());
    }
    let header = [
        "include/torch/headeronly/version.h",
        "include/torch/csrc/api/include/torch/version.h",
    ]
    .iter()
    .find_map(|h| std::fs::read_to_string(root.join(h)).ok())?;
    let part = |name: &str| {
        header.lines().find_map(|l| {
            l.strip_prefix(&format!("#define TORCH_VERSION_{name} "))
                .map(|v| v.trim().to_string())
        })
    };
    Some(format!(
        "{}.{}.{}",
        part("MAJOR")?,
        part("MINOR")?,
        part("PATCH")?
    ))
}

/// The minor version of the compiler building this crate (`rustc 1.MINOR.x`).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}
