//! Bounds-checked reads of a pickle's operands.

use super::{PickleError, bad};

pub struct Reader<'a> {
    pub data: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        if n > self.data.len() - self.pos {
            return bad(format!(
                "truncated: {n} bytes wanted at offset {}, {} left",
                self.pos,
                self.data.len() - self.pos
            ));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn len_u64(&mut self) -> Result<usize, PickleError> {
        usize::try_from(self.u64()?).or_else(|_| bad("length does not fit in memory"))
    }

    /// A newline-terminated UTF-8 line (the operands of `GLOBAL`).
    pub fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| PickleError::Malformed("unterminated GLOBAL name".into()))?;
        let line =
            std::str::from_utf8(&rest[..end]).or_else(|_| bad("GLOBAL name is not UTF-8"))?;
        self.pos += end + 1;
        Ok(line)
    }
}
