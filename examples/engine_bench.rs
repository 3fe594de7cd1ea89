//! Times the folder engine (`lpips::engine`) on two folders, as `lpips dirs` runs them,
//! and a hand-written grouping for comparison (every image decoded first, pairs grouped
//! by size, `distances` per group): scripts/bench_engine.py runs both against the
//! command line.
//!
//! `cargo run --release --example engine_bench -- D0 D1 TRUNK [engine|engine-unordered|hand] [BATCH]`
//! prints `pairs N seconds S mean M`.

use std::collections::BTreeMap;
use std::time::Instant;

use lpips::engine::{self, Job, Options, Scan};
use lpips::{Lpips, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err(
            "usage: engine_bench D0 D1 TRUNK [engine|engine-unordered|hand] [BATCH]".into(),
        );
    }
    let mode = args.get(3).map_or("engine", String::as_str);
    let batch: usize = args.get(4).map_or(Ok(16), |b| b.parse())?;
    lpips::runtime::tune_cpu_allocator();
    let start = Instant::now();
    let model = Lpips::builder().trunk_file(&args[2]).build()?;
    let job = Job::dirs(args[0].as_ref(), args[1].as_ref(), &Scan::default())?;
    let mut sum = 0.0f64;
    let mut n = 0usize;
    match mode {
        "engine" | "engine-unordered" => {
            let options = Options {
                batch_size: batch,
                order_by_size: mode == "engine",
                ..Options::default()
            };
            engine::run(
                &model,
                &job,
                &options,
                |_, r| {
                    if let Ok(r) = r {
                        sum += f64::from(r.distance);
                        n += 1;
                    }
                },
                |_| {},
            )?;
        }
        _ => {
            // Every pair decoded, grouped by size, then `distances` per group.
            let mut groups: BTreeMap<(i64, i64), Vec<(Tensor, Tensor)>> = BTreeMap::new();
            for p in job.pairs() {
                let load = |id: usize| -> lpips::Result<Tensor> {
                    match &job.images()[id] {
                        engine::Source::Path(path) => {
                            lpips::image_to_tensor(&lpips::load_image_8bit(path)?)
                        }
                        engine::Source::Image(img) => lpips::image_to_tensor(img),
                    }
                };
                let (a, b) = (load(p.a)?, load(p.b)?);
                let key = (a.size()[2], a.size()[3]);
                groups.entry(key).or_default().push((a, b));
            }
            for pairs in groups.values() {
                for chunk in pairs.chunks(batch) {
                    let a: Vec<Tensor> = chunk.iter().map(|(a, _)| a.shallow_clone()).collect();
                    let b: Vec<Tensor> = chunk.iter().map(|(_, b)| b.shallow_clone()).collect();
                    let (a, b) = (Tensor::f_cat(&a, 0)?, Tensor::f_cat(&b, 0)?);
                    let d = lpips::tch::no_grad(|| model.distances(a, b))?;
                    sum += d.iter().map(|&x| f64::from(x)).sum::<f64>();
                    n += d.len();
                }
            }
        }
    }
    println!(
        "pairs {n} seconds {:.3} mean {:.6}",
        start.elapsed().as_secs_f64(),
        sum / n.max(1) as f64
    );
    Ok(())
}
