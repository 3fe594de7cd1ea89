//! The EXIF block of a WebP file, found without the `image-webp` reader (which allocates
//! whatever size the chunk header claims before reading it: a fuzzed 4 GB).

/// The payload of the first `EXIF` chunk of a RIFF/WebP file (a TIFF structure; a
/// leading `Exif\0\0`, which some writers add, is skipped), if whole.
pub(crate) fn webp_exif(bytes: &[u8]) -> Option<&[u8]> {
    let body = bytes.get(12..)?;
    if bytes.get(..4)? != b"RIFF" || bytes.get(8..12)? != b"WEBP" {
        return None;
    }
    let mut rest = body;
    while rest.len() >= 8 {
        let (fourcc, size) = (&rest[..4], u32::from_le_bytes(rest[4..8].try_into().ok()?));
        let size = usize::try_from(size).ok()?;
        let data = rest.get(8..8usize.checked_add(size)?)?;
        if fourcc == b"EXIF" {
            return Some(data.strip_prefix(b"Exif\0\0").unwrap_or(data));
        }
        // Chunks are padded to an even size.
        rest = rest.get(8 + size + (size & 1)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn riff(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut body = b"WEBP".to_vec();
        for (fourcc, data) in chunks {
            body.extend_from_slice(*fourcc);
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn finds_the_chunk_after_odd_sized_ones_and_refuses_short_ones() {
        let file = riff(&[(b"VP8X", &[0; 9]), (b"EXIF", b"Exif\0\0MM\0*")]);
        assert_eq!(webp_exif(&file), Some(&b"MM\0*"[..]));
        let mut short = riff(&[(b"EXIF", b"II*\0")]);
        short[16] = 0xff; // the chunk claims 255 bytes
        assert_eq!(webp_exif(&short), None);
        assert_eq!(webp_exif(b"RIFF"), None);
    }
}
