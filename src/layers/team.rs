//! Runs this crate's own CPU kernels (the Winograd blocks, the fused heads) on libtorch's own
//! OpenMP threads. Threads of our own would
//! compete for the cores with libtorch's OpenMP workers, which keep spinning for a while
//! after each of libtorch's parallel operations (libgomp's default wait policy): on 2
//! cores that cancelled the Winograd path's gain in a whole trunk pass (vgg 64x64 batch 8:
//! 164 ms against 169 ms direct; 119 ms with `OMP_WAIT_POLICY=PASSIVE`). libgomp, which
//! libtorch's Linux builds load, is reached by name at run time (`GOMP_parallel`, the
//! entry that `#pragma omp parallel` compiles to); without it, scoped threads do the work.

#![cfg_attr(not(unix), allow(dead_code))]

use std::ffi::{c_int, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
#[cfg(unix)]
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

type Parallel = unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint);
type Query = unsafe extern "C" fn() -> c_int;

/// libgomp's entry points.
struct Gomp {
    parallel: Parallel,
    thread_num: Query,
    num_threads: Query,
}

#[cfg(not(unix))]
fn gomp() -> Option<&'static Gomp> {
    None
}

#[cfg(unix)]
fn gomp() -> Option<&'static Gomp> {
    static GOMP: OnceLock<Option<Gomp>> = OnceLock::new();
    GOMP.get_or_init(|| {
        let find = |name: &std::ffi::CStr| {
            // SAFETY: dlsym with a NUL-terminated name; the global scope holds libgomp
            // when libtorch_cpu, which links it, is loaded.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            (!p.is_null()).then_some(p)
        };
        let (parallel, thread_num, num_threads) = (
            find(c"GOMP_parallel")?,
            find(c"omp_get_thread_num")?,
            find(c"omp_get_num_threads")?,
        );
        // SAFETY: libgomp's exported functions with these C signatures (libgomp's ABI,
        // GOMP_4.0 and OMP_1.0 symbol versions).
        unsafe {
            Some(Gomp {
                parallel: std::mem::transmute::<*mut c_void, Parallel>(parallel),
                thread_num: std::mem::transmute::<*mut c_void, Query>(thread_num),
                num_threads: std::mem::transmute::<*mut c_void, Query>(num_threads),
            })
        }
    })
    .as_ref()
}

/// What each thread of the team needs.
struct Shared<'a> {
    job: &'a (dyn Fn(usize) + Sync),
    parts: usize,
    gomp: &'static Gomp,
    panicked: AtomicBool,
}

extern "C" fn member(data: *mut c_void) {
    // SAFETY: `data` is the `Shared` that `for_each` passed to GOMP_parallel, alive until
    // GOMP_parallel returns, which is after every member has.
    let shared = unsafe { &*(data as *const Shared<'_>) };
    // SAFETY: libgomp's queries, called inside its parallel region.
    let (me, team) = unsafe { ((shared.gomp.thread_num)(), (shared.gomp.num_threads)()) };
    let (mut part, step) = (
        usize::try_from(me).unwrap_or(0),
        usize::try_from(team).unwrap_or(1).max(1),
    );
    while part < shared.parts {
        if catch_unwind(AssertUnwindSafe(|| (shared.job)(part))).is_err() {
            shared.panicked.store(true, Ordering::Relaxed);
        }
        part += step;
    }
}

/// Calls `job(part)` for every part in `0..parts`, each once, spread over up to `parts`
/// threads; false if a call panicked (or a thread could not start and its part did not
/// run: the caller runs what is left).
pub(crate) fn for_each(parts: usize, job: &(dyn Fn(usize) + Sync)) -> bool {
    if parts <= 1 {
        return (0..parts).all(|p| catch_unwind(AssertUnwindSafe(|| job(p))).is_ok());
    }
    if let Some(gomp) = gomp() {
        let shared = Shared {
            job,
            parts,
            gomp,
            panicked: AtomicBool::new(false),
        };
        // SAFETY: `member` only reads `shared`, which outlives the call; GOMP_parallel
        // returns once every thread of the team is done.
        unsafe {
            (gomp.parallel)(
                member,
                &shared as *const Shared<'_> as *mut c_void,
                c_uint::try_from(parts).unwrap_or(c_uint::MAX),
                0,
            )
        };
        return !shared.panicked.load(Ordering::Relaxed);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..parts)
            .map(|p| {
                std::thread::Builder::new()
                    .name("lpips-winograd".to_string())
                    .spawn_scoped(s, move || job(p))
            })
            .collect();
        let mut fine = catch_unwind(AssertUnwindSafe(|| job(0))).is_ok();
        for handle in handles {
            fine &= handle.map(|h| h.join().is_ok()).unwrap_or(true);
        }
        fine
    })
}
