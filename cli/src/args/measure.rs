//! How a pair is measured, shared by `compare` and the folder commands: pixel weights
//! (`--mask`), what the trunk is fed (`--pixel-range`), the memory allowed
//! (`--max-memory`) and per-frame video LPIPS (`--map-mean`).

use std::path::{Path, PathBuf};

use lpips::ndarray::Array2;
use lpips::{FeedRange, LpipsBuilder, LpipsError};

use crate::error::CliError;

#[derive(clap::Args, Clone)]
pub(crate) struct MeasureArgs {
    /// Pixel weights: an 8-bit or 16-bit greyscale image of the images' size (weight =
    /// value / 255 or / 65535; black pixels are not measured). Folder commands: one file
    /// for every pair, or a folder with one mask per image name (dirs: the name in the
    /// first folder; ref: the target's file name).
    #[arg(long)]
    pub(crate) mask: Option<PathBuf>,
    /// What the trunk is fed: minus-one-to-one (the reference's, default), or zero-to-one
    /// (8-bit / 255 fed unchanged: a compatibility switch for comparing with papers that
    /// use 3D Gaussian Splatting's metrics.py / lpipsPyTorch).
    #[arg(long, default_value = "minus-one-to-one", value_parser = parse_feed)]
    pub(crate) pixel_range: FeedRange,
    /// Memory allowed for one comparison's tensors, e.g. 2G, 500M (K/M/G: powers of
    /// 1024); larger images are evaluated in tiles with the same result. Default: 90% of
    /// what the machine has available (MemAvailable) at start. Not the process's peak:
    /// the process itself adds about 0.5 GB (alex, squeeze) to 0.65 GB (vgg) for
    /// libtorch, the weights and the decoded images, so under a container limit of L
    /// pass about L minus 0.7G.
    #[arg(long, value_parser = parse_size)]
    pub(crate) max_memory: Option<u64>,
    /// Report the mean of the spatial (upsampled) map instead of the distance: per-frame
    /// video LPIPS as video-generation evaluation code computes it (`spatial=True`, then
    /// `.mean()`).
    #[arg(long, conflicts_with = "mask")]
    pub(crate) map_mean: bool,
    /// Where mask names are taken from in a folder run (see [`MeasureArgs::name_masks`]).
    #[arg(skip)]
    names: MaskNames,
}

/// Where the mask of a pair is found in a folder of masks.
#[derive(Clone, Default)]
pub(crate) enum MaskNames {
    /// `compare`, or one mask file for every pair.
    #[default]
    Single,
    /// dirs: the first image's path relative to the first folder.
    RelativeTo(PathBuf),
    /// ref: the target's file name.
    TargetName,
}

fn parse_feed(s: &str) -> Result<FeedRange, LpipsError> {
    s.parse()
}

/// `123`, `64K`, `500M`, `2G` (powers of 1024; a trailing `B`/`iB` is allowed).
pub(crate) fn parse_size(s: &str) -> Result<u64, CliError> {
    let refused = |why: &str| CliError::Usage(format!("`{s}`: {why}"));
    let upper = s.trim().to_ascii_uppercase();
    let t = upper.as_str();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        Some('T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let value: f64 = digits
        .trim()
        .parse()
        .map_err(|_| refused("expected a size such as 512M or 2G"))?;
    let bytes = value * (1u64 << shift) as f64;
    if bytes.is_finite() && bytes >= u64::MAX as f64 {
        return Err(refused("too large (at most 16 exbibytes)"));
    }
    if !(bytes.is_finite() && bytes >= 1.0) {
        return Err(refused("expected a positive size such as 512M or 2G"));
    }
    Ok(bytes as u64)
}

impl MeasureArgs {
    /// The model builder with these settings.
    pub(crate) fn apply(&self, builder: LpipsBuilder) -> LpipsBuilder {
        let builder = builder.feed_range(self.pixel_range);
        match self.max_memory {
            Some(bytes) => builder.max_memory(bytes),
            None => builder,
        }
    }

    /// Takes the masks of a folder run from the mask folder, named by `names`.
    pub(crate) fn name_masks(&mut self, names: MaskNames) {
        self.names = names;
    }

    /// The mask file for a pair (`img0`, `img1`): the one mask, or the one named after
    /// the pair in the mask folder (dirs: `img0`'s path in the first folder; ref: the
    /// target's file name); None without `--mask`.
    pub(crate) fn mask_for_pair(&self, img0: &Path, img1: &Path) -> Option<PathBuf> {
        let mask = self.mask.as_ref()?;
        Some(match &self.names {
            MaskNames::Single => mask.clone(),
            MaskNames::RelativeTo(root) => mask.join(img0.strip_prefix(root).unwrap_or(img0)),
            MaskNames::TargetName => mask.join(img1.file_name().unwrap_or(img1.as_os_str())),
        })
    }

    /// The weights for a pair (`img0`, `img1`), from [`MeasureArgs::mask_for_pair`].
    pub(crate) fn weights_for_pair(
        &self,
        img0: &Path,
        img1: &Path,
    ) -> Result<Option<Array2<f32>>, CliError> {
        let Some(path) = self.mask_for_pair(img0, img1) else {
            return Ok(None);
        };
        if !matches!(self.names, MaskNames::Single) && std::fs::symlink_metadata(&path).is_err() {
            // The image the mask is named after: dirs' first image, ref's target.
            let named_after = match self.names {
                MaskNames::TargetName => img1,
                _ => img0,
            };
            return Err(CliError::Input(format!(
                "no mask {} for {} in the mask folder",
                path.display(),
                named_after.display()
            )));
        }
        Ok(Some(lpips::maps::load_mask(&path)?))
    }

    /// The weights for `compare`: the one mask file; None without `--mask`.
    pub(crate) fn weights_for_compare(&self) -> Result<Option<Array2<f32>>, CliError> {
        let Some(mask) = &self.mask else {
            return Ok(None);
        };
        if mask.is_dir() {
            return Err(CliError::Usage(format!(
                "--mask {}: is a folder; compare takes one mask file (folders of masks are \
                 for dirs and ref)",
                mask.display()
            )));
        }
        Ok(Some(lpips::maps::load_mask(mask)?))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("123").ok(), Some(123));
        assert_eq!(parse_size("64K").ok(), Some(64 << 10));
        assert_eq!(parse_size("500M").ok(), Some(500 << 20));
        assert_eq!(parse_size("2G").ok(), Some(2 << 30));
        assert_eq!(parse_size("1.5GiB").ok(), Some(3 << 29));
        assert_eq!(parse_size("2gb").ok(), Some(2 << 30));
        for bad in ["", "G", "-1G", "0", "lots", "inf", "nan"] {
            assert!(
                parse_size(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("such as 512M"),
                "{bad}"
            );
        }
        for huge in ["99999999999999G", "18446744073709551615", "17179869184G"] {
            assert!(
                parse_size(huge)
                    .unwrap_err()
                    .to_string()
                    .contains("too large"),
                "{huge}"
            );
        }
    }
}
