//! Feeding decoded batches to a model: where the decoding runs.
//!
//! On the CPU the model's work already keeps every core busy through libtorch's OpenMP
//! threads. A loader thread decoding the next batch beside it takes a core from one of
//! those threads while the others wait for it at the next barrier, so the decoding
//! costs its whole time all the same. There (training on the CPU), each batch is
//! decoded just before it is used, across as many threads as libtorch uses. With the
//! model on a GPU, or for the baselines (one Rust thread), the CPU has cores to spare
//! and the next batch is decoded while the current one runs. (LPIPS scoring on the CPU
//! goes further: `eval.rs` runs decoding and the model together on single-threaded
//! workers.)

use std::ops::Range;
use std::sync::mpsc::sync_channel;

use tch::Device;

use crate::error::Result;

/// How batches are decoded relative to the model's work.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loading {
    /// Decode the next batch while the current one is consumed.
    overlap: bool,
    /// Threads decoding one batch.
    threads: usize,
}

impl Loading {
    /// For a model on `device` (`None`: no model, the work is a single Rust thread).
    pub(crate) fn for_device(device: Option<Device>) -> Loading {
        match device {
            Some(Device::Cpu) => Loading {
                overlap: false,
                threads: usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1),
            },
            _ => Loading {
                overlap: true,
                threads: 1,
            },
        }
    }

    /// `load(i)` for each index of `range`, in order, on `self.threads` threads; the
    /// first error in index order is returned.
    pub(crate) fn map<U: Send>(
        &self,
        range: Range<usize>,
        load: impl Fn(usize) -> Result<U> + Sync,
    ) -> Result<Vec<U>> {
        let n = range.len();
        let threads = self.threads.min(n);
        if threads <= 1 {
            return range.map(load).collect();
        }
        let chunk = n.div_ceil(threads);
        let load = &load;
        let parts: Vec<Result<Vec<U>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let start = range.start + t * chunk;
                    let end = (start + chunk).min(range.end);
                    s.spawn(move || (start..end).map(load).collect::<Result<Vec<U>>>())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut out = Vec::with_capacity(n);
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// Runs `consume` on the batches `load(start)` of `0..n` in steps of `batch`.
    pub(crate) fn run<T: Send>(
        &self,
        n: usize,
        batch: usize,
        load: impl Fn(usize) -> Result<T> + Sync,
        mut consume: impl FnMut(T) -> Result<()>,
    ) -> Result<()> {
        let batch = batch.max(1);
        if !self.overlap {
            for start in (0..n).step_by(batch) {
                consume(load(start)?)?;
            }
            return Ok(());
        }
        std::thread::scope(|s| {
            let (tx, rx) = sync_channel(1);
            let load = &load;
            s.spawn(move || {
                for start in (0..n).step_by(batch) {
                    let item = load(start);
                    let failed = item.is_err();
                    if tx.send(item).is_err() || failed {
                        break;
                    }
                }
            });
            for item in rx {
                consume(item?)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LpipsError;

    fn fails_at(i: usize) -> LpipsError {
        LpipsError::OutOfBatch {
            start: i as i64,
            len: 0,
            n: 0,
        }
    }

    #[test]
    fn map_keeps_order_and_the_first_error() {
        for threads in [1, 2, 3, 8] {
            let loading = Loading {
                overlap: false,
                threads,
            };
            assert_eq!(
                loading.map(3..20, |i| Ok(i * 2)).unwrap(),
                (3..20).map(|i| i * 2).collect::<Vec<_>>()
            );
            let err = loading
                .map(0..10, |i| {
                    if i == 4 || i == 9 {
                        Err(fails_at(i))
                    } else {
                        Ok(i)
                    }
                })
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                fails_at(4).to_string(),
                "{threads} threads"
            );
            assert!(loading.map(5..5, Ok).unwrap().is_empty());
        }
    }

    #[test]
    fn run_visits_every_batch_in_order_both_ways() {
        for overlap in [false, true] {
            let loading = Loading {
                overlap,
                threads: 2,
            };
            let mut seen = Vec::new();
            loading
                .run(10, 4, Ok, |s| {
                    seen.push(s);
                    Ok(())
                })
                .unwrap();
            assert_eq!(seen, [0, 4, 8]);
            let err = loading
                .run(
                    10,
                    4,
                    |start| {
                        if start == 4 {
                            Err(fails_at(4))
                        } else {
                            Ok(start)
                        }
                    },
                    |_| Ok(()),
                )
                .unwrap_err();
            assert_eq!(err.to_string(), fails_at(4).to_string());
        }
    }
}
