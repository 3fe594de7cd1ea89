// Embeds libtorch's library folder as an rpath so that binaries, tests, benches and
// examples start without LD_LIBRARY_PATH. torch-sys exports the folder only to crates
// that depend on it directly, which is why torch-sys is a direct dependency.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
        if os == "linux" || os == "macos" {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        }
    }
}
