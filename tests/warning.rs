//! The one-time warning for data declared [-1, 1] that holds no negative value (the
//! classic [0, 1] mistake), through the `log` facade. In a process of its own: the
//! warning is shown once per process, and this test installs the logger.
// Tests, benches and examples may panic: the library denies tch's panicking methods
// (clippy.toml), not code built on it.
#![allow(clippy::disallowed_methods)]

#[path = "library/common.rs"]
mod common;

use std::sync::Mutex;

use lpips::{InputRange, Kind, Lin, Net, Ranged, Tensor};

static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.level() <= log::Level::Warn {
            RECORDS.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn warnings() -> Vec<String> {
    RECORDS.lock().unwrap().clone()
}

#[test]
fn zero_to_one_data_declared_minus_one_to_one_is_reported_once() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let model = common::model(Net::Alex, Lin::V0_1);
    let opts = (Kind::Float, lpips::Device::Cpu);
    lpips::tch::manual_seed(7);

    // Properly declared data, in either range, and 8-bit pixels: no warning.
    let unit = Tensor::rand([2, 3, 64, 64], opts);
    let signed = &unit * 2.0 - 1.0;
    model.distances(&signed, signed.flip([3])).unwrap();
    model
        .distances(
            Ranged(&unit, InputRange::ZeroToOne),
            Ranged(&unit.flip([2]), InputRange::ZeroToOne),
        )
        .unwrap();
    let white = lpips::ndarray::Array3::<u8>::from_elem((64, 64, 3), 255);
    model
        .distances(lpips::HwcU8(white.view()), lpips::HwcU8(white.view()))
        .unwrap();
    // A small patch with no negative value by chance: too small to say.
    let tiny = Tensor::rand([1, 3, 31, 31], opts);
    model.distances(&tiny, &tiny).unwrap();
    assert!(warnings().is_empty(), "{:?}", warnings());

    // [0, 1] data given as [-1, 1]: measured (it is in range), and reported once.
    let d = model.distances(&unit, unit.flip([3])).unwrap();
    assert!(d.iter().all(|v| v.is_finite()));
    model.distances(&unit, unit.flip([2])).unwrap();
    let got = warnings();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("no negative value"), "{}", got[0]);
    assert!(got[0].contains("InputRange::ZeroToOne"), "{}", got[0]);
}
