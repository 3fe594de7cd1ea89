//! Every input kind goes through one conversion path and gives the reference's distance
//! for the same pixels; declared ranges are checked; sizes that differ are refused or,
//! when asked, resized as the reference's `interpolate` would.

use crate::common;

use crate::common::{assert_close, cli_oracle, oracle_file, read_tensors};
use image::{DynamicImage, ImageFormat};
use lpips::{Chw, Hwc, HwcU8, InputRange, Lin, Lpips, LpipsError, Nchw, Net, Ranged, Resize};
use ndarray::{Array3, Array4};

fn alex() -> Lpips {
    common::model(Net::Alex, Lin::V0_1)
}

fn close(got: f32, want: f64, what: &str) {
    let tol = 1e-6 + 1e-4 * want.abs();
    assert!(
        (f64::from(got) - want).abs() <= tol,
        "{what}: got {got}, reference {want}"
    );
}

fn pair() -> (DynamicImage, DynamicImage) {
    let a = lpips::load_image(oracle_file("img_alex_0.png")).unwrap();
    let b = lpips::load_image(oracle_file("img_alex_1.png")).unwrap();
    (a, b)
}

#[test]
fn images_paths_and_formats() {
    let m = alex();
    let want = cli_oracle()["alex/v0.1"].as_f64().unwrap();
    let (a, b) = pair();
    close(m.distance(&a, &b).unwrap(), want, "DynamicImage");
    close(
        m.distance(oracle_file("img_alex_0.png"), oracle_file("img_alex_1.png"))
            .unwrap(),
        want,
        "PathBuf",
    );
    let (pa, pb) = (oracle_file("img_alex_0.png"), oracle_file("img_alex_1.png"));
    close(
        m.distance(pa.to_str().unwrap(), pb.to_str().unwrap())
            .unwrap(),
        want,
        "&str",
    );
    let (sa, sb) = (pa.display().to_string(), pb.display().to_string());
    close(m.distance(&sa, &sb).unwrap(), want, "&String");
    close(m.distance(sa.clone(), sb.clone()).unwrap(), want, "String");
    close(
        m.distance(pa.as_path(), pb.as_path()).unwrap(),
        want,
        "&Path",
    );
    close(m.distance(&pa, &pb).unwrap(), want, "&PathBuf");
    close(
        m.distance(pa.as_os_str(), pb.as_os_str()).unwrap(),
        want,
        "&OsStr",
    );
    // Lossless formats hold the same pixels.
    let dir = tempfile::tempdir().unwrap();
    for (ext, format) in [
        ("bmp", ImageFormat::Bmp),
        ("tiff", ImageFormat::Tiff),
        ("webp", ImageFormat::WebP),
        ("png", ImageFormat::Png),
    ] {
        let (fa, fb) = (
            dir.path().join(format!("a.{ext}")),
            dir.path().join(format!("b.{ext}")),
        );
        a.save_with_format(&fa, format).unwrap();
        b.save_with_format(&fb, format).unwrap();
        close(m.distance(&fa, &fb).unwrap(), want, ext);
    }
    // JPEG is lossy: a different image, so only sane.
    let (fa, fb) = (dir.path().join("a.jpg"), dir.path().join("b.jpg"));
    a.to_rgb8().save(&fa).unwrap();
    b.to_rgb8().save(&fb).unwrap();
    let d = m.distance(&fa, &fb).unwrap();
    assert!(
        d.is_finite() && (f64::from(d) - want).abs() < 0.5 * want,
        "jpeg {d} vs {want}"
    );
    // Grey (replicated) against RGBA (alpha dropped), in memory, as the reference reads them.
    let grey = lpips::load_image(oracle_file("img_alex_grey.png")).unwrap();
    let rgba = lpips::load_image(oracle_file("img_alex_rgba.png")).unwrap();
    assert!(
        matches!(grey, DynamicImage::ImageLuma8(_)) && matches!(rgba, DynamicImage::ImageRgba8(_))
    );
    let want_gr = cli_oracle()["alex/v0.1/grey_rgba"].as_f64().unwrap();
    close(m.distance(&grey, &rgba).unwrap(), want_gr, "Luma8 vs Rgba8");
    let grey_alpha = DynamicImage::ImageLumaA8(grey.to_luma_alpha8());
    close(m.distance(&grey_alpha, &rgba).unwrap(), want_gr, "LumaA8");
}

#[test]
fn wide_and_float_images_keep_their_precision() {
    let m = alex();
    let (a, b) = pair();
    let want = m.distance(&a, &b).unwrap();
    // Exactly representable at 16 bits (v * 257) and as floats (v / 255): same values.
    for (x, y) in [
        (
            DynamicImage::ImageRgb16(a.to_rgb16()),
            DynamicImage::ImageRgb16(b.to_rgb16()),
        ),
        (
            DynamicImage::ImageRgba16(a.to_rgba16()),
            DynamicImage::ImageRgba16(b.to_rgba16()),
        ),
        (
            DynamicImage::ImageRgb32F(a.to_rgb32f()),
            DynamicImage::ImageRgb32F(b.to_rgb32f()),
        ),
        (
            DynamicImage::ImageRgba32F(a.to_rgba32f()),
            DynamicImage::ImageRgba32F(b.to_rgba32f()),
        ),
        (
            DynamicImage::ImageLuma16(a.to_luma16()),
            DynamicImage::ImageLuma16(b.to_luma16()),
        ),
    ] {
        let d = m.distance(&x, &y).unwrap();
        let luma = matches!(x, DynamicImage::ImageLuma16(_));
        if luma {
            assert!(d.is_finite() && d > 0.0);
        } else {
            close(d, f64::from(want), &format!("{:?}", x.color()));
        }
    }
}

#[test]
fn arrays_and_tensors() {
    let m = alex();
    let want = cli_oracle()["alex/v0.1"].as_f64().unwrap();
    let (a, b) = pair();
    let (w, h) = (a.width() as usize, a.height() as usize);
    let u8s =
        |img: &DynamicImage| Array3::from_shape_vec((h, w, 3), img.to_rgb8().into_raw()).unwrap();
    let (ua, ub) = (u8s(&a), u8s(&b));
    close(
        m.distance(HwcU8(ua.view()), HwcU8(ub.view())).unwrap(),
        want,
        "HwcU8",
    );

    let unit = |x: &Array3<u8>| x.mapv(|v| f32::from(v) / 255.0);
    let signed = |x: &Array3<u8>| x.mapv(|v| (f64::from(v) / 127.5 - 1.0) as f32);
    let (fa, fb) = (unit(&ua), unit(&ub));
    close(
        m.distance(
            Hwc(fa.view(), InputRange::ZeroToOne),
            Hwc(fb.view(), InputRange::ZeroToOne),
        )
        .unwrap(),
        want,
        "Hwc 0..1",
    );
    let (sa, sb) = (signed(&ua), signed(&ub));
    close(
        m.distance(
            Hwc(sa.view(), InputRange::MinusOneToOne),
            Hwc(sb.view(), InputRange::MinusOneToOne),
        )
        .unwrap(),
        want,
        "Hwc -1..1",
    );
    let (ca, cb) = (
        sa.view().permuted_axes([2, 0, 1]).to_owned(),
        sb.view().permuted_axes([2, 0, 1]).to_owned(),
    );
    close(
        m.distance(
            Chw(ca.view(), InputRange::MinusOneToOne),
            Chw(cb.view(), InputRange::MinusOneToOne),
        )
        .unwrap(),
        want,
        "Chw",
    );
    let na: Array4<f32> = ca.clone().insert_axis(ndarray::Axis(0));
    let nb: Array4<f32> = cb.clone().insert_axis(ndarray::Axis(0));
    close(
        m.distance(
            Nchw(na.view(), InputRange::MinusOneToOne),
            Nchw(nb.view(), InputRange::MinusOneToOne),
        )
        .unwrap(),
        want,
        "Nchw",
    );

    let ta = lpips::image_to_tensor(&a).unwrap();
    let tb = lpips::image_to_tensor(&b).unwrap();
    close(m.distance(&ta, &tb).unwrap(), want, "Tensor");
    close(
        m.distance(
            Ranged(&((&ta + 1.0) / 2.0), InputRange::ZeroToOne),
            Ranged(&((&tb + 1.0) / 2.0), InputRange::ZeroToOne),
        )
        .unwrap(),
        want,
        "Ranged",
    );
    // A model declared for [0, 1] takes bare tensors in [0, 1].
    let unit_model = Lpips::builder()
        .input_range(InputRange::ZeroToOne)
        .trunk_file(oracle_file("trunk_alex.safetensors"))
        .build()
        .unwrap();
    close(
        unit_model
            .distance(&((&ta + 1.0) / 2.0), &((&tb + 1.0) / 2.0))
            .unwrap(),
        want,
        "model range",
    );
    // ...but images stay images, whatever the model's tensor range.
    close(
        unit_model.distance(&a, &b).unwrap(),
        want,
        "image into a [0, 1] model",
    );
}

#[test]
fn declared_ranges_are_checked() {
    let m = alex();
    let (a, b) = pair();
    let (ta, tb) = (
        lpips::image_to_tensor(&a).unwrap(),
        lpips::image_to_tensor(&b).unwrap(),
    );
    // 0..255 data declared [0, 1].
    let bytes = (&ta + 1.0) * 127.5;
    match m.distance(
        Ranged(&bytes, InputRange::ZeroToOne),
        Ranged(&tb, InputRange::MinusOneToOne),
    ) {
        Err(e @ LpipsError::OutOfRange { which: "in0", .. }) => {
            assert!(e.to_string().contains("255"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // [-1, 1] data declared [0, 1].
    assert!(matches!(
        m.distance(
            Ranged(&ta, InputRange::MinusOneToOne),
            Ranged(&tb, InputRange::ZeroToOne)
        ),
        Err(LpipsError::OutOfRange { which: "in1", .. })
    ));
    // A little overshoot, as an optimiser makes, is fine; the check can be turned off.
    assert!(m.distance(&(&ta * 1.1), &tb).is_ok());
    let unchecked = Lpips::builder()
        .check_range(false)
        .trunk_file(oracle_file("trunk_alex.safetensors"))
        .build()
        .unwrap();
    assert!(unchecked.distance(&bytes, &tb).is_ok());
}

#[test]
fn sizes_refused_or_resized_like_interpolate() {
    resized();
}

#[test]
fn imagenet_sizes_refused_or_resized_like_interpolate() {
    common::on_imagenet(resized);
}

fn resized() {
    let oracle = read_tensors("outputs_alex.safetensors");
    let (in0, big, small) = (
        &oracle["in0"],
        &oracle["resize_big"],
        &oracle["resize_small"],
    );
    let strict = alex();
    assert!(matches!(
        strict.forward(in0, big),
        Err(LpipsError::SizeMismatch { .. })
    ));
    let resizing = Lpips::builder()
        .resize(Resize::SecondToFirst)
        .trunk_file(oracle_file("trunk_alex.safetensors"))
        .build()
        .unwrap();
    // Shrinking antialiases, growing does not: torch's interpolate(antialias=True) and plain.
    assert_close(
        &resizing.forward(in0, big).unwrap(),
        &oracle["v0.1/resize_down"],
        "resize down",
    );
    assert_close(
        &resizing.forward(in0, small).unwrap(),
        &oracle["v0.1/resize_up"],
        "resize up",
    );
}

#[test]
fn undefined_and_odd_tensors_are_errors_not_panics() {
    let m = alex();
    let (a, _) = pair();
    let t = lpips::image_to_tensor(&a).unwrap();
    // `Tensor::new()` holds no values: tch's `size` and `dim` would panic on it.
    let undefined = lpips::Tensor::new();
    match m.distance(&undefined, &t) {
        Err(e @ LpipsError::InvalidArgument { .. }) => assert_eq!(
            e.to_string(),
            "input tensor = undefined: expected a tensor holding images \
             (`Tensor::new()` holds no values)"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        m.distance(&t, Ranged(&undefined, InputRange::ZeroToOne)),
        Err(LpipsError::InvalidArgument { .. })
    ));
}

#[test]
fn complex_bool_and_empty_images_are_errors() {
    let m = alex();
    let (a, _) = pair();
    let t = lpips::image_to_tensor(&a).unwrap();
    // libtorch would drop the imaginary part (and print a warning): not a number we give.
    for kind in [tch::Kind::ComplexFloat, tch::Kind::Bool] {
        match m.distance(t.to_kind(kind), &t) {
            Err(e @ LpipsError::InputKind { .. }) => {
                assert!(e.to_string().contains("real numbers"), "{e}")
            }
            other => panic!("{kind:?}: expected InputKind, got {other:?}"),
        }
    }
    let empty = Array3::<f32>::zeros((0, 40, 3));
    let some = Array3::<f32>::zeros((40, 40, 3));
    for (x, y) in [(empty.view(), some.view()), (some.view(), empty.view())] {
        assert!(matches!(
            m.distance(
                Hwc(x, InputRange::MinusOneToOne),
                Hwc(y, InputRange::MinusOneToOne)
            ),
            Err(LpipsError::TooSmall { .. })
        ));
    }
    let zero_wide = t.narrow(3, 0, 0);
    assert!(matches!(
        m.distance(&zero_wide, &zero_wide),
        Err(LpipsError::TooSmall { width: 0, .. })
    ));
}
