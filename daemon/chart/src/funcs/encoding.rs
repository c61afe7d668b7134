//! Encodings and checksums (sprig `crypto.go` hashes, `strings.go` base64/base32).
//! Decoding errors come back as the output string, exactly as sprig does it. Template
//! strings are UTF-8, so decoded bytes that are not valid UTF-8 become U+FFFD (Go keeps
//! the raw bytes).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::digest;

use crate::tmpl::FuncMap;

use super::add;
use super::conv::{arity, str_arg, string};

pub(crate) fn register(m: &mut FuncMap) {
    text_fn(m, "b64enc", |s| STANDARD.encode(s));
    text_fn(m, "b64dec", |s| match STANDARD.decode(s) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => base64_error(&e),
    });
    text_fn(m, "b32enc", |s| base32_encode(s.as_bytes()));
    text_fn(m, "b32dec", |s| match base32_decode(s) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(at) => format!("illegal base32 data at input byte {at}"),
    });
    text_fn(m, "sha1sum", |s| {
        hex(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes()).as_ref())
    });
    text_fn(m, "sha256sum", |s| {
        hex(digest::digest(&digest::SHA256, s.as_bytes()).as_ref())
    });
    text_fn(m, "sha512sum", |s| {
        hex(digest::digest(&digest::SHA512, s.as_bytes()).as_ref())
    });
    text_fn(m, "adler32sum", |s| adler32(s.as_bytes()).to_string());
}

fn text_fn(m: &mut FuncMap, name: &'static str, f: fn(&str) -> String) {
    add(m, name, move |a| {
        arity(name, a, 1, 1)?;
        Ok(string(f(str_arg(name, &a[0])?)))
    });
}

/// Go's wording for a bad base64 input.
fn base64_error(e: &base64::DecodeError) -> String {
    let at = match e {
        base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => *at,
        _ => 0,
    };
    format!("illegal base64 data at input byte {at}")
}

/// Lower-case hexadecimal, as Go's `hex.EncodeToString`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adler-32 (RFC 1950), as Go's `hash/adler32`.
pub(crate) fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

const B32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 with padding, as Go's `base32.StdEncoding`.
pub(crate) fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let symbols = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < symbols {
                let idx = ((bits >> (35 - i * 5)) & 31) as usize;
                out.push(B32_ALPHABET[idx] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes padded RFC 4648 base32; the error is the offset of the first bad byte.
pub(crate) fn base32_decode(s: &str) -> Result<Vec<u8>, usize> {
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'\n' && *b != b'\r').collect();
    if let Some(bad) = bytes.iter().position(|b| *b != b'=' && !B32_ALPHABET.contains(b)) {
        return Err(bad);
    }
    if !bytes.len().is_multiple_of(8) {
        return Err(bytes.len() / 8 * 8);
    }
    let mut out = Vec::with_capacity(bytes.len() / 8 * 5);
    for (block_idx, block) in bytes.chunks(8).enumerate() {
        let mut bits = 0u64;
        let mut symbols = 0;
        for (i, &c) in block.iter().enumerate() {
            if c == b'=' {
                if block[i..].iter().any(|&p| p != b'=') || block_idx != bytes.len() / 8 - 1 {
                    return Err(block_idx * 8 + i);
                }
                break;
            }
            let v = B32_ALPHABET
                .iter()
                .position(|&a| a == c)
                .ok_or(block_idx * 8 + i)?;
            bits |= (v as u64) << (35 - i * 5);
            symbols += 1;
        }
        let n = match symbols {
            8 => 5,
            7 => 4,
            5 => 3,
            4 => 2,
            2 => 1,
            _ => return Err(block_idx * 8 + symbols),
        };
        for i in 0..n {
            out.push((bits >> (32 - i * 8)) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trips_with_padding() {
        assert_eq!(base32_encode(b"coffee"), "MNXWMZTFMU======");
        assert_eq!(base32_decode("MNXWMZTFMU======").unwrap(), b"coffee");
        assert_eq!(base32_encode(b""), "");
        for len in 0..12 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            assert_eq!(base32_decode(&base32_encode(&data)).unwrap(), data);
        }
        assert!(base32_decode("MNXW!ZTF").is_err());
    }

    #[test]
    fn checksums_match_known_vectors() {
        assert_eq!(adler32(b"abc"), 38_600_999);
        assert_eq!(
            hex(digest::digest(&digest::SHA256, b"abc").as_ref()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
