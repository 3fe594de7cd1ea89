//! JPEG decoding through libjpeg-turbo's decoder (the `mozjpeg-sys` crate builds it from
//! its bundled C sources), set up as OpenCV's `imread` sets it up, so that the pixels are
//! bit for bit those of `cv2.imread` (and of PIL, which uses the same library):
//! libjpeg's defaults (integer "slow" IDCT, fancy upsampling), RGB out for one- and
//! three-component files, and for four-component (CMYK / YCCK) files libjpeg's CMYK
//! output mapped to RGB by OpenCV's rule `k - ((255 - c) * k >> 8)` (the Adobe
//! inverted-CMYK convention, applied whatever the file says, as OpenCV does).
//!
//! libjpeg reports fatal errors through `error_exit` and recoverable damage (truncated
//! data, bad Huffman codes, ...) as warnings. Both leave the C code by unwinding a Rust
//! payload (`resume_unwind`: no panic hook runs, nothing is printed) that [`decode`]
//! catches; the C sources are compiled with `-fexceptions` for it (the crate's
//! `unwinding` feature). Warnings are errors unless the caller accepts damaged files.

use std::ffi::{c_int, c_ulong};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use mozjpeg_sys as sys;

/// What libjpeg decoded: 8-bit RGB, or grey for one-component files.
pub(crate) struct Jpeg {
    pub width: u32,
    pub height: u32,
    /// Samples per pixel: 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// Row-major, `channels` interleaved samples a pixel.
    pub pixels: Vec<u8>,
    /// The EXIF payload of the first APP1 `Exif\0\0` segment (the TIFF structure).
    pub exif: Option<Vec<u8>>,
    /// libjpeg's warnings, when damaged data was accepted (empty otherwise).
    pub warnings: Vec<String>,
}

/// How [`decode`] treats a file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JpegOptions {
    /// Accept files libjpeg can only partly decode (truncated, corrupt entropy data),
    /// with its pixels for the damaged part, instead of refusing them.
    pub accept_damaged: bool,
    /// The most pixels (width x height) an image may have.
    pub max_pixels: u64,
}

/// The payload that leaves libjpeg's callbacks.
struct Abort(String);

/// The error manager: libjpeg's own, then what the callbacks record.
#[repr(C)]
struct ErrorManager {
    mgr: sys::jpeg_error_mgr,
    accept_damaged: bool,
    warnings: Vec<String>,
}

/// libjpeg's text for the message in `cinfo.err`.
///
/// # Safety
/// `cinfo.err` must point to an initialised error manager.
unsafe fn message(cinfo: &mut sys::jpeg_common_struct) -> String {
    let mut buf = [0u8; 80];
    // SAFETY: format_message writes at most JMSG_LENGTH_MAX (80) bytes, NUL included;
    // the binding types the buffer as a shared array reference, so it is passed as the
    // pointer the C function really takes.
    unsafe {
        if let Some(format) = (*cinfo.err).format_message {
            type Raw = unsafe extern "C-unwind" fn(&mut sys::jpeg_common_struct, *mut u8);
            let format: Raw = std::mem::transmute(format);
            format(cinfo, buf.as_mut_ptr());
        }
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut sys::jpeg_common_struct) {
    // SAFETY: called by libjpeg with its own, initialised struct.
    let text = unsafe { message(cinfo) };
    resume_unwind(Box::new(Abort(text)));
}

/// Warnings that say nothing about the pixels.
fn harmless(text: &str) -> bool {
    text.starts_with("Warning: unknown JFIF revision")
}

unsafe extern "C-unwind" fn emit_message(cinfo: &mut sys::jpeg_common_struct, level: c_int) {
    if level >= 0 {
        return; // trace messages
    }
    // SAFETY: libjpeg's struct; its `err` is the first field of our ErrorManager.
    let text = unsafe { message(cinfo) };
    let manager = unsafe { &mut *cinfo.err.cast::<ErrorManager>() };
    manager.mgr.num_warnings += 1;
    if !manager.accept_damaged && !harmless(&text) {
        resume_unwind(Box::new(Abort(text)));
    }
    manager.warnings.push(text);
}

unsafe extern "C-unwind" fn output_message(_: &mut sys::jpeg_common_struct) {}

/// The decompressor and its error manager, destroyed on every way out.
struct Decompressor {
    cinfo: Box<sys::jpeg_decompress_struct>,
    /// Owned (from `Box::into_raw`); reached by the callbacks through `cinfo.err`.
    err: *mut ErrorManager,
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: created by jpeg_create_decompress; destroying is allowed in any state.
        // A failure here would unwind out of drop: contain it.
        let cinfo = &mut *self.cinfo;
        let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
            sys::jpeg_destroy_decompress(cinfo)
        }));
        // SAFETY: from Box::into_raw in `decode`, freed once, after libjpeg is done.
        drop(unsafe { Box::from_raw(self.err) });
    }
}

/// Why a JPEG file gave no pixels.
#[derive(Debug)]
pub(crate) enum JpegError {
    /// libjpeg refused it, or found it damaged.
    Corrupt(String),
    /// The memory for its pixels (this many bytes) could not be had.
    OutOfMemory(u64),
}

impl From<String> for JpegError {
    fn from(reason: String) -> Self {
        JpegError::Corrupt(reason)
    }
}

impl From<&str> for JpegError {
    fn from(reason: &str) -> Self {
        JpegError::Corrupt(reason.to_string())
    }
}

/// Decodes a whole JPEG file held in memory.
pub(crate) fn decode(data: &[u8], options: JpegOptions) -> Result<Jpeg, JpegError> {
    if data.is_empty() {
        return Err("empty file".into());
    }
    // SAFETY: all-zero is the state libjpeg expects before jpeg_std_error and
    // jpeg_create_decompress fill the structs in.
    let len = c_ulong::try_from(data.len()).map_err(|_| "file too large".to_string())?;
    let mut err = Box::new(ErrorManager {
        mgr: unsafe { std::mem::zeroed() },
        accept_damaged: options.accept_damaged,
        warnings: Vec::new(),
    });
    unsafe { sys::jpeg_std_error(&mut err.mgr) };
    err.mgr.error_exit = Some(error_exit);
    err.mgr.emit_message = Some(emit_message);
    err.mgr.output_message = Some(output_message);
    let err = Box::into_raw(err);
    let mut d = Decompressor {
        cinfo: Box::new(unsafe { std::mem::zeroed() }),
        err,
    };
    // The error manager is the first field of ErrorManager (repr(C)).
    d.cinfo.common.err = err.cast();
    let result = catch_unwind(AssertUnwindSafe(|| unsafe {
        sys::jpeg_create_decompress(&mut *d.cinfo);
        run(&mut d.cinfo, data, len, options)
    }));
    match result {
        Ok(Ok(mut jpeg)) => {
            // SAFETY: libjpeg is done calling back; the manager is still owned by `d`.
            jpeg.warnings = std::mem::take(unsafe { &mut (*d.err).warnings });
            Ok(jpeg)
        }
        Ok(Err(e)) => Err(e),
        Err(payload) => Err(reason(payload).into()),
    }
}

fn reason(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<Abort>() {
        Ok(abort) => abort.0,
        // Not ours: a real panic in this module, passed on.
        Err(other) => resume_unwind(other),
    }
}

/// The decoding steps; libjpeg may unwind out of any call.
///
/// # Safety
/// `cinfo` is a created decompressor; `data` outlives it.
unsafe fn run(
    cinfo: &mut sys::jpeg_decompress_struct,
    data: &[u8],
    len: c_ulong,
    options: JpegOptions,
) -> Result<Jpeg, JpegError> {
    unsafe {
        sys::jpeg_mem_src(cinfo, data.as_ptr(), len);
        sys::jpeg_save_markers(cinfo, sys::jpeg_marker::APP0 as c_int + 1, 0xffff);
        sys::jpeg_read_header(cinfo, 1);
    }
    let components = cinfo.num_components;
    cinfo.out_color_space = match components {
        1 => sys::J_COLOR_SPACE::JCS_GRAYSCALE,
        4 => sys::J_COLOR_SPACE::JCS_CMYK,
        _ => sys::J_COLOR_SPACE::JCS_RGB,
    };
    let (width, height) = (cinfo.image_width, cinfo.image_height);
    if u64::from(width) * u64::from(height) > options.max_pixels {
        return Err(format!(
            "{width}x{height} pixels is more than the {} this reader accepts",
            options.max_pixels
        )
        .into());
    }
    let exif = unsafe { exif_segment(cinfo) };
    unsafe { sys::jpeg_start_decompress(cinfo) };
    let out = cinfo.output_components as usize;
    let (w, h) = (cinfo.output_width as usize, cinfo.output_height as usize);
    let mut row = vec![0u8; w * out];
    let channels: usize = if components == 1 { 1 } else { 3 };
    // The one allocation that grows with the image: fallible, so that an image too
    // large for the memory left is an error, not an abort.
    let bytes = w.saturating_mul(h).saturating_mul(channels);
    let mut pixels = Vec::new();
    pixels
        .try_reserve_exact(bytes)
        .map_err(|_| JpegError::OutOfMemory(bytes as u64))?;
    while (cinfo.output_scanline as usize) < h {
        let mut rows = [row.as_mut_ptr()];
        let got = unsafe { sys::jpeg_read_scanlines(cinfo, rows.as_mut_ptr(), 1) };
        if got != 1 {
            // Only a suspending data source returns no row; the memory source never does.
            return Err("libjpeg returned no scanline".into());
        }
        match out {
            4 => pixels.extend(row.chunks_exact(4).flat_map(cmyk_to_rgb)),
            _ => pixels.extend_from_slice(&row),
        }
    }
    unsafe { sys::jpeg_finish_decompress(cinfo) };
    Ok(Jpeg {
        width: w as u32,
        height: h as u32,
        channels: channels as u8,
        pixels,
        exif,
        warnings: Vec::new(),
    })
}

unsafe extern "C" {
    /// libjpeg-turbo's check for a SIMD integer IDCT (the build without SIMD defines it
    /// to answer 0).
    fn jsimd_can_idct_islow() -> c_int;
}

/// Whether libjpeg's integer IDCT runs its SIMD code on this machine.
pub(crate) fn simd() -> bool {
    // SAFETY: a query without arguments or state beyond a CPU-feature cache.
    unsafe { jsimd_can_idct_islow() != 0 }
}

/// OpenCV's CMYK to RGB (its `icvCvt_CMYK2BGR_8u_C4C3R`, channels in RGB order): the
/// samples libjpeg gives for Adobe files are inverted, so `k - (255 - c) * k / 256`.
fn cmyk_to_rgb(cmyk: &[u8]) -> [u8; 3] {
    let k = i32::from(cmyk[3]);
    let one = |v: u8| (k - (((255 - i32::from(v)) * k) >> 8)) as u8;
    [one(cmyk[0]), one(cmyk[1]), one(cmyk[2])]
}

/// The TIFF structure of the first APP1 segment that starts with `Exif\0\0`.
///
/// # Safety
/// `cinfo` has read its header with APP1 markers saved.
unsafe fn exif_segment(cinfo: &sys::jpeg_decompress_struct) -> Option<Vec<u8>> {
    let mut marker = cinfo.marker_list;
    while !marker.is_null() {
        // SAFETY: libjpeg's saved-marker list, valid until the decompressor is destroyed.
        let m = unsafe { &*marker };
        if m.marker == sys::jpeg_marker::APP0 as u8 + 1 && !m.data.is_null() {
            let data = unsafe { std::slice::from_raw_parts(m.data, m.data_length as usize) };
            if let Some(tiff) = data.strip_prefix(b"Exif\0\0") {
                return Some(tiff.to_vec());
            }
        }
        marker = m.next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_rule_is_opencvs() {
        // 255 - (255 * 255 >> 8): not 0, the rule OpenCV applies.
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 255]), [1, 1, 1]);
        assert_eq!(cmyk_to_rgb(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[255, 0, 128, 0]), [0, 0, 0]);
        // 200 - (55 * 200 >> 8) = 200 - 42
        assert_eq!(cmyk_to_rgb(&[200, 200, 200, 200])[0], 158);
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let opts = JpegOptions {
            accept_damaged: false,
            max_pixels: 1 << 20,
        };
        assert!(decode(b"", opts).is_err());
        assert!(decode(b"\xff\xd8\xff\xe0garbage", opts).is_err());
        assert!(decode(&[0u8; 100], opts).is_err());
    }
}
