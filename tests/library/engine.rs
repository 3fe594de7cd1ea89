//! The folder engine (`lpips::engine`): mixed folders (sizes, formats, a broken file, a
//! too-small image, masks, tiles under a memory budget) against the reference; decoded
//! images equal to files; the three pairings; cancellation; per-pair errors. Its rows
//! equal `lpips dirs`'s: cli/tests/cli/folders.rs (`dirs_rows_equal_the_library_engine`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lpips::engine::{self, Job, Options, PairResult, Scan, Source};
use lpips::{Lin, Lpips, LpipsError, Net};

use crate::common::{assert_close_slice, cli_oracle, model, oracle_file};
use crate::harness::{harness, harness_file};

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

/// d0 and d1: a.png (the oracle's pair), b.bmp and b.tiff (the same pair as BMP and TIFF
/// files), c.png (grey vs RGBA), h.png (the harness pair, another size, masked),
/// broken.png (unreadable in d0), size.png (sizes differ), tiny.png (4x4: below the
/// trunk's minimum).
fn mixed_dirs() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    std::fs::create_dir_all(&d0).unwrap();
    std::fs::create_dir_all(&d1).unwrap();
    let o = oracle_file;
    copy(&o("img_alex_0.png"), &d0.join("a.png"));
    copy(&o("img_alex_1.png"), &d1.join("a.png"));
    for (ext, format) in [
        ("bmp", image::ImageFormat::Bmp),
        ("tiff", image::ImageFormat::Tiff),
    ] {
        for (src, dir) in [("img_alex_0.png", &d0), ("img_alex_1.png", &d1)] {
            let img = lpips::load_image_8bit(o(src)).unwrap().to_rgb8();
            img.save_with_format(dir.join(format!("b.{ext}")), format)
                .unwrap();
        }
    }
    copy(&o("img_alex_grey.png"), &d0.join("c.png"));
    copy(&o("img_alex_rgba.png"), &d1.join("c.png"));
    copy(&harness_file("alex_a.png"), &d0.join("h.png"));
    copy(&harness_file("alex_b.png"), &d1.join("h.png"));
    std::fs::write(d0.join("broken.png"), b"not a png").unwrap();
    copy(&o("img_alex_0.png"), &d1.join("broken.png"));
    copy(&o("img_vgg_0.png"), &d0.join("size.png"));
    copy(&o("img_alex_0.png"), &d1.join("size.png"));
    for dir in [&d0, &d1] {
        image::RgbImage::new(4, 4)
            .save(dir.join("tiny.png"))
            .unwrap();
    }
    std::fs::write(d0.join("notes.txt"), b"not an image").unwrap();
    t
}

type Results = BTreeMap<usize, Result<PairResult, LpipsError>>;

fn run_all(model: &Lpips, job: &Job, options: &Options) -> Results {
    let mut got = BTreeMap::new();
    let mut progress = Vec::new();
    let done = engine::run(
        model,
        job,
        options,
        |k, r| assert!(got.insert(k, r).is_none(), "pair {k} reported twice"),
        |p| progress.push(p),
    )
    .unwrap();
    assert_eq!(done.reported, job.pairs().len());
    assert!(!done.cancelled);
    assert_eq!(got.len(), job.pairs().len());
    assert_eq!(progress.len(), job.pairs().len());
    assert!(progress.iter().enumerate().all(|(i, p)| p.done == i + 1));
    got
}

fn distance(results: &Results, k: usize) -> f32 {
    match &results[&k] {
        Ok(r) => r.distance,
        Err(e) => panic!("pair {k}: {e}"),
    }
}

fn error(results: &Results, k: usize) -> String {
    match &results[&k] {
        Ok(r) => panic!("pair {k}: expected an error, got {}", r.distance),
        Err(e) => {
            assert!(matches!(e, LpipsError::Pair { .. }), "{e:?}");
            e.to_string()
        }
    }
}

fn small_batches() -> Options {
    Options {
        batch_size: 3,
        decode_threads: 2,
        trunk_workers: Some(2),
        ..Options::default()
    }
}

#[test]
fn engine_on_mixed_folders_matches_the_reference() {
    let t = mixed_dirs();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    let mut job = Job::dirs(&d0, &d1, &Scan::default()).unwrap();
    let names: Vec<String> = (0..job.pairs().len()).map(|k| job.pair_name(k)).collect();
    let at = |name: &str| names.iter().position(|n| n.contains(name)).unwrap();
    // Byte order of the names: a, b.bmp, b.tiff, broken, c, h, size, tiny.
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(job.unmatched().is_empty());
    let mask = harness_file("alex_mask8.png");
    job.set_mask(at("h.png"), Some(mask.clone()));
    let oracle = cli_oracle();
    let want = |key: &str| oracle[key].as_f64().unwrap() as f32;
    let h = harness();
    let m = model(Net::Alex, Lin::V0_1);
    for options in [small_batches(), Options::default()] {
        let got = run_all(&m, &job, &options);
        for name in ["a.png", "b.bmp", "b.tiff"] {
            assert_close_slice(&[distance(&got, at(name))], &[want("alex/v0.1")], name);
        }
        assert_close_slice(
            &[distance(&got, at("c.png"))],
            &[want("alex/v0.1/grey_rgba")],
            "grey vs rgba",
        );
        assert_close_slice(
            &[distance(&got, at("h.png"))],
            &[h["alex/v0.1/mask8"].as_f64().unwrap() as f32],
            "masked harness pair",
        );
        assert!(error(&got, at("broken")).contains("broken.png"));
        assert!(error(&got, at("size")).contains("differ in size"));
        let tiny = error(&got, at("tiny"));
        assert!(
            tiny.contains("tiny.png") && tiny.contains("at least"),
            "{tiny}"
        );
    }
    // Without the mask, the harness pair's plain distance.
    job.set_mask(at("h.png"), None);
    let got = run_all(&m, &job, &small_batches());
    assert_close_slice(
        &[distance(&got, at("h.png"))],
        &[h["alex/v0.1/plain"].as_f64().unwrap() as f32],
        "harness pair",
    );
}

/// Larger images under a small memory budget: tiles, with the whole pass's results.
#[test]
fn engine_tiles_under_a_memory_budget() {
    let t = tempfile::tempdir().unwrap();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    std::fs::create_dir_all(&d0).unwrap();
    std::fs::create_dir_all(&d1).unwrap();
    for (k, (src, dir)) in [("img_alex_0.png", &d0), ("img_alex_1.png", &d1)]
        .into_iter()
        .enumerate()
    {
        let img = lpips::load_image_8bit(oracle_file(src)).unwrap();
        for (name, w, h) in [("big.png", 263, 257), ("wide.png", 300, 200)] {
            img.resize_exact(w, h, image::imageops::FilterType::Triangle)
                .save(dir.join(name))
                .unwrap();
        }
        let _ = k;
    }
    let job = Job::dirs(&d0, &d1, &Scan::default()).unwrap();
    let whole = model(Net::Alex, Lin::V0_1);
    let budgeted = Lpips::builder()
        .trunk_file(oracle_file("trunk_alex.safetensors"))
        .max_memory(12 << 20)
        .build()
        .unwrap();
    assert!(budgeted.tile_size(1, 257, 263, false).unwrap().is_some());
    let options = Options {
        spatial: true,
        ..small_batches()
    };
    let want = run_all(&whole, &job, &options);
    let got = run_all(&budgeted, &job, &options);
    for k in 0..job.pairs().len() {
        let (g, w) = (got[&k].as_ref().unwrap(), want[&k].as_ref().unwrap());
        assert_close_slice(&[g.distance], &[w.distance], "tiled distance");
        let (gm, wm) = (g.map.as_ref().unwrap(), w.map.as_ref().unwrap());
        assert_eq!(gm.dim(), wm.dim());
        assert_close_slice(
            gm.as_slice().unwrap(),
            wm.as_slice().unwrap(),
            "tiled spatial map",
        );
    }
}

/// Decoded images give the files' results; maps are image-sized and their mean is the
/// `map_mean` distance; the pairings index as the command line does.
#[test]
fn engine_sources_maps_and_pairings() {
    let m = model(Net::Alex, Lin::V0_1);
    let (p0, p1) = (oracle_file("img_alex_0.png"), oracle_file("img_alex_1.png"));
    let decoded = (
        lpips::load_image_8bit(&p0).unwrap(),
        lpips::load_image_8bit(&p1).unwrap(),
    );
    let job = Job::from_pairs::<Source, Source>([
        (p0.as_path().into(), p1.as_path().into()),
        (decoded.0.clone().into(), decoded.1.clone().into()),
        (decoded.0.into(), p0.as_path().into()),
    ])
    .unwrap();
    let want = cli_oracle()["alex/v0.1"].as_f64().unwrap() as f32;
    let options = Options {
        spatial: true,
        map_mean: true,
        ..small_batches()
    };
    let got = run_all(&m, &job, &options);
    for k in 0..2 {
        let r = got[&k].as_ref().unwrap();
        let map = r.map.as_ref().unwrap();
        assert_eq!(map.dim(), (45, 67));
        assert!((map.mean().unwrap() - r.distance).abs() < 1e-5);
        let plain = m.distance(&p0, &p1).unwrap();
        let spatial_mean = m.distance_map(&p0, &p1).unwrap().mean().unwrap();
        assert_close_slice(&[r.distance], &[spatial_mean], "map mean");
        assert_close_slice(&[plain], &[want], "plain");
    }
    assert_eq!(
        got[&2].as_ref().unwrap().distance,
        0.0,
        "an image with itself"
    );

    // all-pairs: i < j in name order; ref: the reference first in every pair.
    let t = tempfile::tempdir().unwrap();
    for (k, name) in ["b.png", "a.png", "c.png"].into_iter().enumerate() {
        copy(
            &oracle_file(&format!("img_alex_{}.png", k % 2)),
            &t.path().join(name),
        );
    }
    let all = Job::all_pairs(t.path(), &Scan::default()).unwrap();
    let pairs: Vec<(usize, usize)> = all.pairs().iter().map(|p| (p.a, p.b)).collect();
    assert_eq!(pairs, [(0, 1), (0, 2), (1, 2)]);
    assert!(all.image_name(0).ends_with("a.png"));
    let reference = Job::reference(
        &oracle_file("img_alex_1.png"),
        &[t.path().to_path_buf(), oracle_file("img_alex_0.png")],
        &Scan::default(),
    )
    .unwrap();
    assert_eq!(reference.pairs().len(), 4);
    assert!(reference.pairs().iter().all(|p| p.a == 0));
    let got = run_all(&m, &reference, &small_batches());
    assert_close_slice(&[distance(&got, 3)], &[want], "ref pair");
    // a.png holds the reference's image; b.png and c.png the other one.
    assert_eq!(distance(&got, 0), 0.0, "a.png is the reference's image");
    assert_close_slice(&[distance(&got, 1)], &[want], "b.png vs ref");
    assert_close_slice(&[distance(&got, 2)], &[want], "c.png vs ref");

    let e = Job::all_pairs(&t.path().join("missing"), &Scan::default()).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    let mut job = Job::new();
    assert!(job.push_pair(0, 1, None).is_err(), "no images yet");
}

/// Per-pair errors: a missing file, a folder given as an image, a mask of another size;
/// the other pairs are measured.
#[test]
fn engine_per_pair_errors_never_end_the_job() {
    let m = model(Net::Alex, Lin::V0_1);
    let t = tempfile::tempdir().unwrap();
    let (p0, p1) = (oracle_file("img_alex_0.png"), oracle_file("img_alex_1.png"));
    let mut job = Job::from_pairs([
        (p0.clone(), t.path().join("missing.png")),
        (p0.clone(), p1.clone()),
        (t.path().to_path_buf(), p1.clone()),
        (p0.clone(), p1.clone()),
    ])
    .unwrap();
    job.set_mask(3, Some(harness_file("alex_mask8.png")));
    let got = run_all(&m, &job, &small_batches());
    assert!(error(&got, 0).contains("missing.png"));
    assert!(!error(&got, 2).is_empty());
    let mask = error(&got, 3);
    assert!(mask.contains("images of 45x67"), "{mask}");
    let want = cli_oracle()["alex/v0.1"].as_f64().unwrap() as f32;
    assert_close_slice(&[distance(&got, 1)], &[want], "the good pair");
}

/// A cancel flag set after k results: exactly k reported, promptly.
#[test]
fn engine_cancellation_stops_promptly() {
    let m = model(Net::Alex, Lin::V0_1);
    let (p0, p1) = (oracle_file("img_alex_0.png"), oracle_file("img_alex_1.png"));
    let job = Job::from_pairs((0..400).map(|_| (p0.clone(), p1.clone()))).unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let options = Options {
        cancel: Some(cancel.clone()),
        batch_size: 4,
        ..small_batches()
    };
    let mut seen = Vec::new();
    let mut stopped_at = None;
    let start = Instant::now();
    let done = engine::run(
        &m,
        &job,
        &options,
        |k, r| {
            assert!(r.is_ok());
            seen.push(k);
            if seen.len() == 5 {
                cancel.store(true, Ordering::Relaxed);
                stopped_at = Some(Instant::now());
            }
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(seen.len(), 5, "no result after the flag");
    assert_eq!(done.reported, 5);
    assert!(done.cancelled);
    let after = stopped_at.unwrap().elapsed();
    assert!(
        after < Duration::from_secs(5),
        "returned {after:?} after the flag ({:?} in all)",
        start.elapsed()
    );
    // Set before the run: nothing at all.
    let done = engine::run(&m, &job, &options, |_, _| panic!("a result"), |_| {}).unwrap();
    assert_eq!(done.reported, 0);
    assert!(done.cancelled);
}
