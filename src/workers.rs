//! Single-threaded libtorch workers for batches of small images on the CPU.
//!
//! libtorch runs each operation on all its OpenMP threads, which meet at a barrier at
//! its end; the threads that finish first spin there. On small images (BAPPS's 64x64
//! patches) that is a large share of the time, and on a machine whose cores are busy
//! with other work the spinning threads burn the time slices the others need (measured
//! in docs/benchmarks.md, "A busy machine": a folder run 1.5 s idle, 8.1 s busy). Giving
//! each core a worker that runs libtorch single-threaded on its share of a batch leaves
//! no barrier at all: `lpips eval` and the `lpips` folder commands use this.
//!
//! ```no_run
//! # fn main() -> lpips::Result<()> {
//! use lpips::{Lpips, Tensor};
//!
//! let model = Lpips::builder().build()?;
//! let threads = lpips::tch::get_num_threads() as usize;
//! let batches: Vec<(Tensor, Tensor)> = Vec::new(); // pairs of N x 3 x 64 x 64 shares
//! let distances = lpips::workers::with_workers(
//!     &model,
//!     threads,
//!     |m, (a, b): (Tensor, Tensor)| m.distances(&a, &b),
//!     |workers| workers.run(batches),
//! )?;
//! # Ok(())
//! # }
//! ```

use std::sync::mpsc::{Receiver, Sender, channel};

use crate::error::{LpipsError, Result};
use crate::model::Lpips;

/// The workers started by [`with_workers`]: jobs go in, results come back in order.
#[derive(Debug)]
pub struct Workers<J, R> {
    lanes: Vec<(Sender<J>, Receiver<R>)>,
}

impl<J: Send, R: Send> Workers<J, R> {
    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// Whether there are none (never, for workers [`with_workers`] started).
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    /// Runs the jobs on the workers and returns their results in the jobs' order: up to
    /// [`len`](Self::len) at once, one per worker; more jobs than workers are queued,
    /// each worker taking the next when it is done. `None` if a worker has stopped (it
    /// panicked: the panic is raised again when [`with_workers`] returns).
    pub fn run(&self, jobs: Vec<J>) -> Option<Vec<R>> {
        let n = jobs.len();
        let lanes = self.lanes.len();
        if lanes == 0 {
            return if n == 0 { Some(Vec::new()) } else { None };
        }
        // Job i goes to worker i % lanes; each worker's channel keeps its jobs in order,
        // so its answers come back in that order too.
        let mut sent = true;
        for (i, job) in jobs.into_iter().enumerate() {
            sent &= self.lanes[i % lanes].0.send(job).is_ok();
        }
        // Every answer is collected before returning, so none is left for the next run.
        let answers: Vec<Option<R>> = (0..n)
            .map(|i| self.lanes[i % lanes].1.recv().ok())
            .collect();
        if !sent {
            return None;
        }
        answers.into_iter().collect()
    }
}

/// The most workers [`with_workers`] starts: far more than any machine has cores.
pub const MAX_WORKERS: usize = 4096;

/// Runs `body` with `threads` workers (at least one), each a thread of its own with a
/// handle on `model` ([`Lpips::share`]), libtorch set to one thread and autograd off,
/// applying `work` to the jobs [`Workers::run`] hands it.
///
/// libtorch's thread count is per thread, but it is also the default that threads
/// created later start from; the caller's count is set back when the workers are done.
/// A panic in `work` is raised again here, with its own message, after `body` has
/// returned. More than [`MAX_WORKERS`] threads, or threads the system will not start,
/// are an error ([`LpipsError::Workers`]) and `body` does not run.
pub fn with_workers<J: Send, R: Send, T>(
    model: &Lpips,
    threads: usize,
    work: impl Fn(&Lpips, J) -> R + Sync,
    body: impl FnOnce(&Workers<J, R>) -> T,
) -> Result<T> {
    let threads = threads.max(1);
    if threads > MAX_WORKERS {
        return Err(LpipsError::Workers {
            threads,
            reason: format!("at most {MAX_WORKERS} are allowed"),
        });
    }
    let _restore = RestoreThreads(tch::get_num_threads());
    let work = &work;
    std::thread::scope(|s| {
        let mut lanes = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (job_tx, job_rx) = channel::<J>();
            let (done_tx, done_rx) = channel::<R>();
            let handle = model.share();
            let started = std::thread::Builder::new()
                .name("lpips-worker".to_string())
                .spawn_scoped(s, move || {
                    tch::set_num_threads(1);
                    let _guard = tch::no_grad_guard();
                    for job in job_rx {
                        if done_tx.send(work(&handle, job)).is_err() {
                            break;
                        }
                    }
                });
            match started {
                Ok(h) => handles.push(h),
                // Dropping `lanes` closes the job channels: the started workers end
                // and the scope waits for them.
                Err(e) => {
                    return Err(LpipsError::Workers {
                        threads,
                        reason: format!("the system started only {}: {e}", handles.len()),
                    });
                }
            }
            lanes.push((job_tx, done_rx));
        }
        let workers = Workers { lanes };
        let out = body(&workers);
        // Closing the job channels ends the workers; a worker's panic is raised again
        // with its own payload (the scope would only say that a thread panicked).
        drop(workers);
        for h in handles {
            if let Err(payload) = h.join() {
                std::panic::resume_unwind(payload);
            }
        }
        Ok(out)
    })
}

/// Sets libtorch's thread count back to the caller's when dropped (also on a panic).
struct RestoreThreads(i32);

impl Drop for RestoreThreads {
    fn drop(&mut self) {
        tch::set_num_threads(self.0);
    }
}
