//! Image files read exactly as the reference reads them (`cv2.imread(path)[:, :, ::-1]`):
//! every file of the image oracle (scripts/gen_images.py: real photographs as JPEG in
//! every subsampling, progressive, restart intervals, grey and CMYK; the 8 EXIF
//! orientations in JPEG, PNG, WebP and TIFF; 16-bit PNG and TIFF with all 65536 values;
//! PNG colour types) gives OpenCV's pixels bit for bit; damaged files are refused unless
//! accepted; the reference's distances on real JPEGs and 16-bit PNGs are met.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use image::DynamicImage;
use lpips::{ImageReader, Lin, LpipsError, Net};
use ndarray::Array3;

use crate::common::{self, oracle_file};

fn images_dir() -> PathBuf {
    let dir = oracle_file("images");
    assert!(
        dir.join("stamp").is_file(),
        "the image oracle is missing from {}: run `make oracle` (scripts/gen_images.py)",
        dir.display()
    );
    dir
}

fn manifest() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(images_dir().join("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["files"].as_array().unwrap().clone()
}

fn entries(kind: &str) -> Vec<serde_json::Value> {
    let found: Vec<_> = manifest()
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect();
    assert!(!found.is_empty(), "no {kind} files in the image oracle");
    found
}

fn file(entry: &serde_json::Value) -> PathBuf {
    images_dir().join(entry["file"].as_str().unwrap())
}

/// OpenCV's RGB pixels for the entry, or the expected ones where OpenCV fails.
fn opencv(entry: &serde_json::Value) -> Option<Array3<u8>> {
    let npy = entry["cv2"].as_str().or(entry["expected"].as_str())?;
    Some(ndarray_npy::read_npy(images_dir().join(npy)).unwrap())
}

fn rgb(img: &DynamicImage) -> Array3<u8> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    Array3::from_shape_vec((h, w, 3), img.to_rgb8().into_raw()).unwrap()
}

/// Differing samples, and the largest difference.
fn diff(got: &Array3<u8>, want: &Array3<u8>) -> (usize, u8) {
    assert_eq!(got.shape(), want.shape(), "shape");
    got.iter().zip(want).fold((0, 0), |(n, worst), (&a, &b)| {
        let d = a.abs_diff(b);
        (n + usize::from(d != 0), worst.max(d))
    })
}

/// Asserts that every entry of `kind` reads to OpenCV's pixels with `reader`.
fn all_exact(kind: &str, reader: ImageReader) -> usize {
    let mut failures = Vec::new();
    let list = entries(kind);
    for entry in &list {
        let want = opencv(entry).unwrap_or_else(|| panic!("{entry}: no pixels to compare"));
        match reader.read(file(entry)) {
            Ok(img) => {
                let got = rgb(&img);
                if got.shape() != want.shape() {
                    failures.push(format!(
                        "{}: shape {:?} vs {:?}",
                        entry["file"],
                        got.shape(),
                        want.shape()
                    ));
                } else if let (n @ 1.., worst) = diff(&got, &want) {
                    failures.push(format!(
                        "{}: {n} samples differ, up to {worst}",
                        entry["file"]
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", entry["file"])),
        }
    }
    assert!(
        failures.is_empty(),
        "{kind}: not OpenCV's pixels:\n{}",
        failures.join("\n")
    );
    eprintln!("{kind}: {} files pixel-exact to OpenCV", list.len());
    list.len()
}

#[test]
fn jpeg_pixels_are_opencvs() {
    all_exact("jpeg", ImageReader::new());
    all_exact("jpeg", ImageReader::new().eight_bit(true));
}

#[test]
fn exif_orientation_is_applied_as_opencv_does() {
    // JPEG, PNG (eXIf), WebP and TIFF, the 8 orientations, non-square.
    all_exact("orientation", ImageReader::new());
}

#[test]
fn png_colour_types_are_opencvs() {
    // Grey and grey+alpha replicated, palette expanded, alpha dropped (not composited).
    all_exact("png_mode", ImageReader::new());
}

#[test]
fn tiff_alpha_is_opencvs() {
    // Unassociated alpha premultiplied (libtiff's RGBA interface), the rest kept.
    all_exact("tiff_alpha", ImageReader::new());
}

#[test]
fn sixteen_bit_files_reduce_as_opencv_does_or_keep_their_precision() {
    // All 65536 values, PNG and TIFF, grey, RGB and RGBA.
    all_exact("depth16", ImageReader::new().eight_bit(true));
    for entry in entries("depth16") {
        let img = lpips::load_image(file(&entry)).unwrap();
        assert!(
            matches!(
                img,
                DynamicImage::ImageLuma16(_)
                    | DynamicImage::ImageLumaA16(_)
                    | DynamicImage::ImageRgb16(_)
                    | DynamicImage::ImageRgba16(_)
            ),
            "{}: load_image keeps 16 bits, got {:?}",
            entry["file"],
            img.color()
        );
        let eight = lpips::load_image_8bit(file(&entry)).unwrap();
        assert_eq!(
            eight.color().bytes_per_pixel(),
            eight.color().channel_count()
        );
    }
}

/// The log records of this test binary (the library logs through `log`; it never prints).
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        LOGGED
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static LOGGER: Capture = Capture;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Warn);
}

fn logged_about(path: &Path) -> Vec<String> {
    let name = path.display().to_string();
    LOGGED
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(&name))
        .cloned()
        .collect()
}

#[test]
fn damaged_jpegs_are_refused_unless_accepted() {
    capture_logs();
    let mut truncated_exact = 0;
    for entry in entries("damaged_jpeg") {
        let path = file(&entry);
        // Refused by default, naming the file and libjpeg's finding.
        let err = lpips::load_image(&path).unwrap_err();
        assert!(
            matches!(&err, LpipsError::CorruptImage { path: p, .. } if p == &path),
            "{}: {err}",
            entry["file"]
        );
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        assert!(logged_about(&path).is_empty(), "refusing logs nothing");
        // Accepted on request: libjpeg-turbo's pixels (OpenCV's), and a warning.
        let img = ImageReader::new().accept_damaged(true).read(&path).unwrap();
        let logs = logged_about(&path);
        assert!(
            logs.iter()
                .any(|l| l.starts_with("WARN") && l.contains("damaged")),
            "{}: no warning logged: {logs:?}",
            entry["file"]
        );
        let want = opencv(&entry).expect("OpenCV reads damaged JPEGs");
        let (n, worst) = diff(&rgb(&img), &want);
        if entry["damage"] == "truncated" || lpips::runtime::jpeg_simd() {
            assert_eq!((n, worst), (0, 0), "{}: not OpenCV's pixels", entry["file"]);
            truncated_exact += usize::from(entry["damage"] == "truncated");
        } else {
            // Without SIMD, corrupt coefficients out of range wrap instead of clamping.
            eprintln!(
                "{}: {n} samples differ from OpenCV (up to {worst}): plain-C IDCT",
                entry["file"]
            );
        }
    }
    assert!(truncated_exact > 0);
    // A truncated PNG: OpenCV reads nothing; refused in both modes.
    let png = images_dir().join("chelsea_truncated.png");
    for reader in [ImageReader::new(), ImageReader::new().accept_damaged(true)] {
        let err = reader.read(&png).unwrap_err();
        assert!(err.to_string().contains("chelsea_truncated.png"), "{err}");
    }
}

/// Runs `f` on another thread; fails if it has not returned within a minute.
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what}: hung (no answer within a minute)"))
}

#[test]
fn folders_fifos_and_devices_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.png");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let cases = [
        (dir.path().to_path_buf(), "folder"),
        (fifo, "FIFO"),
        (PathBuf::from("/dev/zero"), "device"),
    ];
    for (path, kind) in cases {
        let p = path.clone();
        let result = within_a_minute(kind, move || lpips::load_image(&p).map(|_| ()));
        let err = result.unwrap_err();
        assert!(matches!(err, LpipsError::NotAFile { .. }), "{kind}: {err}");
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        // And through a model, as a path input.
        let p = path.clone();
        let err = within_a_minute(kind, move || {
            common::model(Net::Alex, Lin::V0_1)
                .distance(&p, &p)
                .map(|_| ())
        })
        .unwrap_err();
        assert!(matches!(err, LpipsError::NotAFile { .. }), "{kind}: {err}");
    }
}

#[test]
fn distances_on_real_files_are_the_references() {
    let m = common::model(Net::Alex, Lin::V0_1);
    let text = std::fs::read_to_string(images_dir().join("distances.json")).unwrap();
    let pairs: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (key, pair) in pairs.as_object().unwrap() {
        let want = pair["alex/v0.1"].as_f64().unwrap();
        let a = images_dir().join(pair["a"].as_str().unwrap());
        let b = images_dir().join(pair["b"].as_str().unwrap());
        let got = m
            .distance(
                lpips::load_image_8bit(&a).unwrap(),
                lpips::load_image_8bit(&b).unwrap(),
            )
            .unwrap();
        let tol = 1e-6 + 1e-4 * want.abs();
        let err = (f64::from(got) - want).abs();
        assert!(err <= tol, "{key}: got {got}, reference {want}");
        eprintln!("{key}: {got} vs reference {want}: |diff| {err:.2e} (tolerance {tol:.2e})");
        // Paths read at full precision: the same for 8-bit files.
        let by_path = m.distance(&a, &b).unwrap();
        if key != "png16" {
            assert_eq!(by_path, got, "{key}: path input");
        } else {
            eprintln!("{key}: at 16-bit precision {by_path}");
        }
    }
}
