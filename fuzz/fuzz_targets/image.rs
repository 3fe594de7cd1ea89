//! Fuzzes image decoding as the library's loader does it (`ImageReader::read` less the
//! file opening): format from the content, JPEG through libjpeg-turbo with errors and
//! warnings unwound out of the C code, EXIF orientation, the 8-bit reduction; both with
//! damaged JPEGs refused and accepted. Any input must give pixels or an error: no
//! panic, no abort, no leak of libjpeg's state, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/image_io/jpeg.rs"]
mod jpeg;

#[allow(dead_code)]
#[path = "../../src/image_io/depth.rs"]
mod depth;

#[allow(dead_code)]
#[path = "../../src/image_io/alpha.rs"]
mod alpha;

#[allow(dead_code)]
#[path = "../../src/image_io/exif.rs"]
mod exif;

#[allow(dead_code)]
#[path = "../../src/image_io/decode.rs"]
mod decode;

fuzz_target!(|data: &[u8]| {
    for accept_damaged in [false, true] {
        for eight_bit in [false, true] {
            let options = decode::DecodeOptions {
                eight_bit,
                accept_damaged,
            };
            if let Ok(decoded) = decode::decode(data, options) {
                let img = decoded.image;
                // Every sample is there.
                let samples = img.width() as usize * img.height() as usize;
                assert_eq!(
                    img.as_bytes().len(),
                    samples * img.color().bytes_per_pixel() as usize
                );
                if !accept_damaged {
                    assert!(decoded.warnings.is_empty());
                }
            }
        }
    }
});
