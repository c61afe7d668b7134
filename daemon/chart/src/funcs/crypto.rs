//! Secret-handling functions (sprig `crypto.go`): `encryptAES`/`decryptAES`, `bcrypt`,
//! `htpasswd`, `derivePassword`. Certificates and keys live in [`super::certs`].
//!
//! Inputs here are secrets: error messages never echo them.

use aes::Aes256;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use ring::{hmac, pbkdf2};

use crate::tmpl::FuncMap;

use super::add;
use super::conv::{arity, call_error, str_arg, string, to_i64};

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "encryptAES", |a| {
        arity("encryptAES", a, 2, 2)?;
        let key = str_arg("encryptAES", &a[0])?;
        Ok(string(encrypt_aes(key, str_arg("encryptAES", &a[1])?)))
    });
    add(m, "decryptAES", |a| {
        arity("decryptAES", a, 2, 2)?;
        let key = str_arg("decryptAES", &a[0])?;
        decrypt_aes(key, str_arg("decryptAES", &a[1])?)
            .map(string)
            .map_err(|e| call_error("decryptAES", e))
    });
    add(m, "bcrypt", |a| {
        arity("bcrypt", a, 1, 1)?;
        bcrypt_hash(str_arg("bcrypt", &a[0])?).map(string)
    });
    add(m, "htpasswd", |a| {
        arity("htpasswd", a, 2, 2)?;
        let user = str_arg("htpasswd", &a[0])?;
        let password = str_arg("htpasswd", &a[1])?;
        if user.contains(':') {
            return Ok(string(format!("invalid username: {user}")));
        }
        Ok(string(format!("{user}:{}", bcrypt_hash(password)?)))
    });
    add(m, "derivePassword", |a| {
        arity("derivePassword", a, 5, 5)?;
        let counter = u32::try_from(to_i64(&a[0])).unwrap_or(0);
        let kind = str_arg("derivePassword", &a[1])?;
        let password = str_arg("derivePassword", &a[2])?;
        let user = str_arg("derivePassword", &a[3])?;
        let site = str_arg("derivePassword", &a[4])?;
        Ok(string(derive_password(counter, kind, password, user, site)))
    });
}

fn bcrypt_hash(password: &str) -> crate::tmpl::Result<String> {
    // Go's bcrypt.DefaultCost and the `$2a$` prefix Go emits.
    bcrypt::hash_with_result(password, 10)
        .map(|h| h.format_for_version(bcrypt::Version::TwoA))
        .map_err(|e| call_error("bcrypt", format!("hashing failed: {e}")))
}

/// AES-256 key as sprig builds it: the password's bytes, zero-padded or cut to 32.
fn aes_key(password: &str) -> Aes256 {
    let mut key = [0u8; 32];
    let bytes = password.as_bytes();
    let n = bytes.len().min(32);
    key[..n].copy_from_slice(&bytes[..n]);
    Aes256::new(GenericArray::from_slice(&key))
}

/// AES-256-CBC with PKCS#7 padding and a random IV, base64(IV || ciphertext).
pub(crate) fn encrypt_aes(password: &str, plaintext: &str) -> String {
    if plaintext.is_empty() {
        return String::new();
    }
    let cipher = aes_key(password);
    let mut content = plaintext.as_bytes().to_vec();
    let pad = 16 - content.len() % 16;
    content.extend(std::iter::repeat_n(pad as u8, pad));
    let mut iv = [0u8; 16];
    rand::rng().fill(&mut iv);
    let mut out = iv.to_vec();
    let mut prev = iv;
    for chunk in content.chunks(16) {
        let mut block = [0u8; 16];
        for (i, b) in block.iter_mut().enumerate() {
            *b = chunk[i] ^ prev[i];
        }
        let mut ga = GenericArray::from(block);
        cipher.encrypt_block(&mut ga);
        prev.copy_from_slice(&ga);
        out.extend_from_slice(&ga);
    }
    STANDARD.encode(out)
}

/// The inverse of [`encrypt_aes`]; errors name the problem, never the data.
pub(crate) fn decrypt_aes(password: &str, encoded: &str) -> Result<String, String> {
    if encoded.is_empty() {
        return Ok(String::new());
    }
    let data = STANDARD
        .decode(encoded)
        .map_err(|_| "ciphertext is not valid base64".to_string())?;
    if data.len() < 32 || data.len() % 16 != 0 {
        return Err("ciphertext is not a whole number of AES blocks after the IV".into());
    }
    let cipher = aes_key(password);
    let (iv, body) = data.split_at(16);
    let mut prev: [u8; 16] = iv.try_into().map_err(|_| "bad IV".to_string())?;
    let mut plain = Vec::with_capacity(body.len());
    for chunk in body.chunks(16) {
        let mut ga = GenericArray::clone_from_slice(chunk);
        cipher.decrypt_block(&mut ga);
        for i in 0..16 {
            plain.push(ga[i] ^ prev[i]);
        }
        prev.copy_from_slice(chunk);
    }
    let pad = usize::from(*plain.last().unwrap_or(&0));
    if pad == 0 || pad > 16 || pad > plain.len() {
        return Err("wrong key or corrupted ciphertext (bad padding)".into());
    }
    plain.truncate(plain.len() - pad);
    Ok(String::from_utf8_lossy(&plain).into_owned())
}

const MASTER_PASSWORD_SEED: &[u8] = b"com.lyndir.masterpassword";

fn password_templates(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "maximum" => &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"],
        "long" => &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
        "medium" => &["CvcnoCvc", "CvcCvcno"],
        "short" => &["Cvcn"],
        "basic" => &["aaanaaan", "aannaaan", "aaannaaa"],
        "pin" => &["nnnn"],
        _ => return None,
    })
}

fn template_chars(c: char) -> &'static [u8] {
    match c {
        'V' => b"AEIOU",
        'C' => b"BCDFGHJKLMNPQRSTVWXYZ",
        'v' => b"aeiou",
        'c' => b"bcdfghjklmnpqrstvwxyz",
        'A' => b"AEIOUBCDFGHJKLMNPQRSTVWXYZ",
        'a' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
        'n' => b"0123456789",
        'o' => b"@&%?,=[]_:-+*$#!'^~;()/.",
        _ => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
    }
}

/// The Master Password algorithm (v3) as sprig implements it.
fn derive_password(counter: u32, kind: &str, password: &str, user: &str, site: &str) -> String {
    let Some(templates) = password_templates(kind) else {
        return format!("cannot find password template {kind}");
    };
    let mut salt = MASTER_PASSWORD_SEED.to_vec();
    salt.extend_from_slice(&(user.len() as u32).to_be_bytes());
    salt.extend_from_slice(user.as_bytes());
    let Some(key) = scrypt(password.as_bytes(), &salt, 32_768, 8, 2, 64) else {
        return "failed to derive password: scrypt parameters".into();
    };
    let mut msg = MASTER_PASSWORD_SEED.to_vec();
    msg.extend_from_slice(&(site.len() as u32).to_be_bytes());
    msg.extend_from_slice(site.as_bytes());
    msg.extend_from_slice(&counter.to_be_bytes());
    let seed = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), &msg);
    let seed = seed.as_ref();
    let template = templates[usize::from(seed[0]) % templates.len()];
    template
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let chars = template_chars(c);
            char::from(chars[usize::from(seed[i + 1]) % chars.len()])
        })
        .collect()
}

/// scrypt (RFC 7914) over ring's PBKDF2-HMAC-SHA256.
fn scrypt(password: &[u8], salt: &[u8], n: usize, r: usize, p: usize, dk_len: usize) -> Option<Vec<u8>> {
    if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 {
        return None;
    }
    let block_len = 128 * r;
    let mut b = vec![0u8; p * block_len];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::MIN,
        salt,
        password,
        &mut b,
    );
    let mut v = vec![0u32; n * 32 * r];
    for chunk in b.chunks_mut(block_len) {
        ro_mix(chunk, r, n, &mut v);
    }
    let mut out = vec![0u8; dk_len];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::MIN,
        &b,
        password,
        &mut out,
    );
    Some(out)
}

fn ro_mix(block: &mut [u8], r: usize, n: usize, v: &mut [u32]) {
    let words = 32 * r;
    let mut x: Vec<u32> = block
        .chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut y = vec![0u32; words];
    for i in 0..n {
        v[i * words..(i + 1) * words].copy_from_slice(&x);
        block_mix(&x, &mut y, r);
        std::mem::swap(&mut x, &mut y);
    }
    for _ in 0..n {
        let j = (x[(2 * r - 1) * 16] as usize) & (n - 1);
        for (xi, vi) in x.iter_mut().zip(&v[j * words..(j + 1) * words]) {
            *xi ^= vi;
        }
        block_mix(&x, &mut y, r);
        std::mem::swap(&mut x, &mut y);
    }
    for (c, w) in block.chunks_mut(4).zip(&x) {
        c.copy_from_slice(&w.to_le_bytes());
    }
}

fn block_mix(input: &[u32], out: &mut [u32], r: usize) {
    let mut x = [0u32; 16];
    x.copy_from_slice(&input[(2 * r - 1) * 16..2 * r * 16]);
    for i in 0..2 * r {
        for k in 0..16 {
            x[k] ^= input[i * 16 + k];
        }
        salsa20_8(&mut x);
        let dst = if i % 2 == 0 { i / 2 } else { r + i / 2 };
        out[dst * 16..(dst + 1) * 16].copy_from_slice(&x);
    }
}

fn salsa20_8(b: &mut [u32; 16]) {
    let mut x = *b;
    let q = |x: &mut [u32; 16], a: usize, b_: usize, c: usize, d: usize| {
        x[b_] ^= x[a].wrapping_add(x[d]).rotate_left(7);
        x[c] ^= x[b_].wrapping_add(x[a]).rotate_left(9);
        x[d] ^= x[c].wrapping_add(x[b_]).rotate_left(13);
        x[a] ^= x[d].wrapping_add(x[c]).rotate_left(18);
    };
    for _ in 0..4 {
        q(&mut x, 0, 4, 8, 12);
        q(&mut x, 5, 9, 13, 1);
        q(&mut x, 10, 14, 2, 6);
        q(&mut x, 15, 3, 7, 11);
        q(&mut x, 0, 1, 2, 3);
        q(&mut x, 5, 6, 7, 4);
        q(&mut x, 10, 11, 8, 9);
        q(&mut x, 15, 12, 13, 14);
    }
    for (bi, xi) in b.iter_mut().zip(x.iter()) {
        *bi = bi.wrapping_add(*xi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_round_trips_and_rejects_garbage() {
        let enc = encrypt_aes("secretkey", "plaintext");
        assert_ne!(enc, encrypt_aes("secretkey", "plaintext"), "random IV");
        assert_eq!(decrypt_aes("secretkey", &enc).unwrap(), "plaintext");
        assert!(decrypt_aes("secretkey", "!!").is_err());
        assert!(decrypt_aes("secretkey", &STANDARD.encode([0u8; 20])).is_err());
        assert_eq!(encrypt_aes("k", ""), "");
    }

    #[test]
    fn scrypt_matches_rfc7914() {
        let out = scrypt(b"password", b"NaCl", 1024, 8, 16, 64).unwrap();
        assert_eq!(
            super::super::encoding::hex(&out[..16]),
            "fdbabe1c9d3472007856e7190d01e9fe"
        );
    }

    #[test]
    fn bcrypt_uses_go_prefix_and_cost() {
        let h = bcrypt_hash("pw").unwrap();
        assert!(h.starts_with("$2a$10$"), "{h}");
        assert!(bcrypt::verify("pw", &h).unwrap());
    }
}
