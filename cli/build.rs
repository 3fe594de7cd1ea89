// The one set-up step for a binary that uses lpips: find libtorch at run time without
// LD_LIBRARY_PATH, and keep libtorch_cuda linked so that CUDA devices are seen.
fn main() {
    if let Ok(lib) = std::env::var("DEP_LPIPS_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    if std::env::var("DEP_LPIPS_CUDA").as_deref() == Ok("1") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
