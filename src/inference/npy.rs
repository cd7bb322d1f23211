//! A reader for NumPy `.npy` files, the format of bioimage.io test tensors.
//!
//! Supports format versions 1-3, C order, little-endian or byte-sized numeric dtypes
//! (`u1 u2 u4 u8 i1 i2 i4 i8 f4 f8`, and `b1`). Values are converted to `f32`, which is what the
//! models consume; the original dtype is kept for messages and for `ensure_dtype`.

use std::path::Path;

/// A decoded `.npy` array.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Shape, outermost axis first.
    pub shape: Vec<usize>,
    /// NumPy dtype string as stored, e.g. `<f4` or `<u2`.
    pub dtype: String,
    /// Values in C order, converted to f32.
    pub data: Vec<f32>,
}

/// Why a `.npy` file could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct NpyError(String);

const MAGIC: &[u8] = b"\x93NUMPY";

impl NpyArray {
    /// Read and decode the file at `path`.
    pub fn read(path: &Path) -> Result<Self, NpyError> {
        let bytes = std::fs::read(path)
            .map_err(|e| NpyError(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&bytes).map_err(|NpyError(e)| NpyError(format!("{}: {e}", path.display())))
    }

    /// Decode `.npy` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, NpyError> {
        let bad = |m: &str| NpyError(m.to_string());
        if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
            return Err(bad("not a .npy file (bad magic)"));
        }
        let (header_len, start): (usize, usize) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
            v => return Err(NpyError(format!("unsupported .npy version {v}"))),
        };
        let header = bytes
            .get(start..start.saturating_add(header_len))
            .ok_or_else(|| bad("truncated header"))?;
        let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
        let dtype = dict_value(header, "descr")
            .map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_string())
            .ok_or_else(|| bad("header has no 'descr'"))?;
        if dict_value(header, "fortran_order").is_none_or(|v| v != "False") {
            return Err(bad(
                "only C-order arrays are supported (fortran_order must be False)",
            ));
        }
        let shape = parse_shape(header)?;
        let count = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad("shape too large"))?;
        let body = &bytes[start + header_len..];
        let data = decode(&dtype, body, count)?;
        Ok(Self { shape, dtype, data })
    }
}

/// The raw text of `key`'s value in the header dict (`{'descr': '<f4', ...}`).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?;
    let rest = rest.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

fn parse_shape(header: &str) -> Result<Vec<usize>, NpyError> {
    let v = dict_value(header, "shape").ok_or_else(|| NpyError("header has no 'shape'".into()))?;
    v.trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| NpyError(format!("bad shape entry {s:?}")))
        })
        .collect()
}

fn decode(dtype: &str, body: &[u8], count: usize) -> Result<Vec<f32>, NpyError> {
    let Some((order, kind)) = dtype.split_at_checked(dtype.len().min(1)) else {
        return Err(NpyError(format!("unsupported dtype {dtype:?}")));
    };
    let little = match order {
        "<" | "|" => true,
        ">" => false,
        _ => return Err(NpyError(format!("unsupported dtype {dtype:?}"))),
    };
    let size: usize = match kind.get(1..).and_then(|s| s.parse().ok()) {
        Some(n @ (1 | 2 | 4 | 8)) => n,
        _ => return Err(NpyError(format!("unsupported dtype {dtype:?}"))),
    };
    let need = count
        .checked_mul(size)
        .ok_or_else(|| NpyError("shape too large".into()))?;
    if body.len() < need {
        return Err(NpyError(format!(
            "data truncated: {} bytes for {count} values of {dtype}",
            body.len()
        )));
    }
    let word = |c: &[u8]| -> [u8; 8] {
        let mut w = [0u8; 8];
        if little {
            w[..size].copy_from_slice(c);
        } else {
            for (i, b) in c.iter().rev().enumerate() {
                w[i] = *b;
            }
        }
        w
    };
    let convert: fn([u8; 8]) -> f32 = match (&kind[..1], size) {
        ("f", 4) => |w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]),
        ("f", 8) => |w| f64::from_le_bytes(w) as f32,
        ("u" | "b", 1) => |w| w[0] as f32,
        ("u", 2) => |w| u16::from_le_bytes([w[0], w[1]]) as f32,
        ("u", 4) => |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as f32,
        ("u", 8) => |w| u64::from_le_bytes(w) as f32,
        ("i", 1) => |w| w[0] as i8 as f32,
        ("i", 2) => |w| i16::from_le_bytes([w[0], w[1]]) as f32,
        ("i", 4) => |w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]) as f32,
        ("i", 8) => |w| i64::from_le_bytes(w) as f32,
        _ => return Err(NpyError(format!("unsupported dtype {dtype:?}"))),
    };
    Ok(body[..need]
        .chunks_exact(size)
        .map(|c| convert(word(c)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of a version-1 .npy file with this header dict, padded like NumPy pads it.
    fn npy_with(dict: &str, body: &[u8]) -> Vec<u8> {
        let mut header = dict.to_string();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend([1, 0]);
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(body);
        out
    }

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        npy_with(
            &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"),
            body,
        )
    }

    #[test]
    fn decodes_float_and_integer_arrays() {
        let body: Vec<u8> = [1.5f32, -2.0, 3.25, 0.0, 7.0, 8.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = NpyArray::parse(&npy("<f4", "(1, 2, 3)", &body)).unwrap();
        assert_eq!(a.shape, vec![1, 2, 3]);
        assert_eq!(a.data, vec![1.5, -2.0, 3.25, 0.0, 7.0, 8.0]);
        let body: Vec<u8> = [65535u16, 1, 33000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = NpyArray::parse(&npy("<u2", "(3,)", &body)).unwrap();
        assert_eq!((a.shape.as_slice(), a.dtype.as_str()), (&[3][..], "<u2"));
        assert_eq!(a.data, vec![65535.0, 1.0, 33000.0]);
        let body: Vec<u8> = (-3i16..0).flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            NpyArray::parse(&npy(">i2", "(3,)", &body)).unwrap().data,
            vec![-3.0, -2.0, -1.0]
        );
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let f4 = 1.0f32.to_le_bytes();
        for (bytes, want) in [
            (b"not numpy at all".to_vec(), "magic"),
            (npy("<f4", "(2, 2)", &f4), "truncated"),
            (npy("<c8", "(1,)", &[0; 8]), "unsupported dtype"),
            (npy("<U3", "(1,)", &[0; 12]), "unsupported dtype"),
            (npy("<f4", "(1,)", &f4)[..20].to_vec(), "truncated header"),
        ] {
            let e = NpyArray::parse(&bytes).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        let fortran = npy_with(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
            &f4,
        );
        let e = NpyArray::parse(&fortran).unwrap_err().to_string();
        assert!(e.contains("C-order"), "{e}");
    }
}
