//! The OpenMP wait policy of `lpips train`: passive unless the user chose one.
//!
//! libtorch's CPU operations run on OpenMP threads (the torch wheel's libgomp), which by
//! default spin for a while at every barrier before they sleep. On a machine whose
//! cores are busy with other work, a spinning thread burns the time slice that the
//! thread it waits for needs. Measured (scripts/bench_workflows.py, 2 cores, two other
//! processes spinning; docs/benchmarks.md "A busy machine"): one epoch of 1,000
//! triplets took 10.5 s with libgomp's default and 4.4 s with passive waiting, and the
//! same on an idle machine (2.7 and 2.6 s). Folder runs lose 22% on an idle machine
//! with passive waiting, so they keep the default (the README says how to choose);
//! `lpips eval` runs libtorch single-threaded on worker threads and has no barriers.
//!
//! libgomp reads `OMP_WAIT_POLICY` and `GOMP_SPINCOUNT` once, in its initialiser, which
//! runs before `main` (and a `.preinit_array` function cannot set them: glibc installs
//! the process's environment only after it). So `lpips train` starts itself again with
//! the variable set, once, which costs one more libtorch start (about 0.4 s).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

/// The variables by which users choose libgomp's waiting.
const CHOICES: [&str; 2] = ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"];

/// Starts this process again with passive waiting, unless the user chose a policy or
/// the program cannot be found; returns only when it did not.
pub(crate) fn passive_for_training() {
    if CHOICES.iter().any(|k| std::env::var_os(k).is_some()) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("lpips"));
    let error = std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .exec();
    log::debug!("could not restart with passive OpenMP waiting ({error}); continuing");
}

/// The wait policy in effect, for `lpips info`.
pub(crate) fn describe() -> String {
    let set: Vec<String> = CHOICES
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
        .collect();
    if set.is_empty() {
        "OpenMP's default (`lpips train` waits passively unless OMP_WAIT_POLICY or \
         GOMP_SPINCOUNT is set)"
            .into()
    } else {
        format!("{} (from the environment)", set.join(", "))
    }
}
