//! `lpips compare`: the distance between two images, and optionally its spatial map.

use std::path::{Path, PathBuf};

use image::DynamicImage;
use lpips::Lpips;
use lpips::ndarray::Array2;

use crate::args::{Format, MeasureArgs, ModelArgs};
use crate::error::{CliError, Context};
use crate::outputs;
use crate::terminal::outln;

#[derive(clap::Args)]
pub struct CompareArgs {
    /// First image.
    img0: PathBuf,
    /// Second image.
    img1: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    measure: MeasureArgs,
    /// Also write the spatial distance map: `.npy` (float32 H x W) or `.png` (heat map);
    /// with --mask, NaN (npy) or transparent (png) where the mask is black.
    #[arg(long)]
    spatial_out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy)]
enum SpatialKind {
    Npy,
    Png,
}

/// The map's format, from `--spatial-out`'s extension.
fn spatial_kind(path: &Path) -> Result<SpatialKind, CliError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("npy") => Ok(SpatialKind::Npy),
        Some("png") => Ok(SpatialKind::Png),
        _ => Err(CliError::Usage(format!(
            "--spatial-out {}: the name must end in .npy or .png",
            path.display()
        ))),
    }
}

pub fn run(args: CompareArgs) -> Result<(), CliError> {
    let spatial = check_spatial_out(&args)?;
    args.model.device()?;
    let (a, b) = load_pair(&args.img0, &args.img1)?;
    let weights = args.measure.weights_for_compare()?;
    let model = args.measure.apply(args.model.builder()?).build()?;
    if spatial.is_some() {
        // The map needs more memory than the distance: fail now, not after the distance.
        model.tile_size(1, i64::from(a.height()), i64::from(a.width()), true)?;
    }
    let distance = distance(&model, &a, &b, weights.as_ref(), args.measure.map_mean)?;
    if !distance.is_finite() {
        return Err(CliError::Input(format!(
            "the distance between {} and {} is {distance} (not finite): the model overflowed",
            args.img0.display(),
            args.img1.display()
        )));
    }
    let spatial_max = match (&args.spatial_out, spatial) {
        (Some(path), Some(kind)) => write_map(&model, &a, &b, weights.as_ref(), path, kind)?,
        _ => None,
    };
    print(&args, distance, spatial_max)
}

/// The map's format, after checking that `--spatial-out` can be written and replaces
/// no input; None without it.
fn check_spatial_out(args: &CompareArgs) -> Result<Option<SpatialKind>, CliError> {
    let Some(path) = &args.spatial_out else {
        return Ok(None);
    };
    let kind = spatial_kind(path)?;
    let inputs = [&args.img0, &args.img1]
        .into_iter()
        .chain(&args.measure.mask)
        .map(PathBuf::as_path);
    outputs::Inputs::new(inputs)
        .with_model(&args.model)
        .check_file("--spatial-out", path, outputs::Stdout::NotAccepted)?;
    Ok(Some(kind))
}

/// The two images, with the reference's pixels (16-bit files reduced to 8 bits as
/// OpenCV does); images of two sizes are refused.
fn load_pair(img0: &Path, img1: &Path) -> Result<(DynamicImage, DynamicImage), CliError> {
    let a = lpips::load_image_8bit(img0)?;
    let b = lpips::load_image_8bit(img1)?;
    if (a.width(), a.height()) != (b.width(), b.height()) {
        return Err(CliError::Input(format!(
            "images differ in size: {} is {}x{}, {} is {}x{} (WxH)",
            img0.display(),
            a.width(),
            a.height(),
            img1.display(),
            b.width(),
            b.height()
        )));
    }
    Ok((a, b))
}

/// The distance: weighted by the mask, the mean of the spatial map (`--map-mean`), or
/// the plain one.
fn distance(
    model: &Lpips,
    a: &DynamicImage,
    b: &DynamicImage,
    weights: Option<&Array2<f32>>,
    map_mean: bool,
) -> Result<f32, CliError> {
    Ok(match weights {
        Some(w) => model.distance_weighted(a, b, w)?,
        None if map_mean => {
            let map = model.distance_map(a, b)?;
            (map.iter().map(|&v| f64::from(v)).sum::<f64>() / map.len() as f64) as f32
        }
        None => model.distance(a, b)?,
    })
}

/// Writes the spatial map to `path`; for a heat map, returns the top of its colour scale.
fn write_map(
    model: &Lpips,
    a: &DynamicImage,
    b: &DynamicImage,
    weights: Option<&Array2<f32>>,
    path: &Path,
    kind: SpatialKind,
) -> Result<Option<f32>, CliError> {
    let mut map = model.distance_map(a, b)?;
    if let Some(w) = weights {
        lpips::maps::mask_map(&mut map, w)?;
    }
    match kind {
        SpatialKind::Npy => {
            lpips::maps::write_npy(path, &map).context("cannot write the distance map")?;
            Ok(None)
        }
        SpatialKind::Png => Ok(Some(
            lpips::maps::write_heatmap(path, &map, None).context("cannot write the heat map")?,
        )),
    }
}

fn print(args: &CompareArgs, distance: f32, spatial_max: Option<f32>) -> Result<(), CliError> {
    match args.format {
        Format::Text => {
            outln!("{distance}");
            if let (Some(path), Some(max)) = (&args.spatial_out, spatial_max) {
                eprintln!("heat map {}: colour scale 0 to {max}", path.display());
            }
        }
        Format::Json => {
            let out = serde_json::json!({
                "distance": distance,
                "img0": args.img0,
                "img1": args.img1,
                "net": args.model.net,
                "variant": args.model.variant,
                "lin": args.model.lin,
                "mask": args.measure.mask,
                "pixel_range": args.measure.pixel_range,
                "map_mean": args.measure.map_mean,
                "spatial_out": args.spatial_out,
                "spatial_scale_max": spatial_max,
            });
            outln!("{out}");
        }
    }
    Ok(())
}
