//! Random values (sprig `strings.go` rand*, `numeric.go` randInt, `crypto.go` randBytes,
//! `uuid`). They use the operating system's entropy through `rand`, never a fixed seed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rand::seq::SliceRandom;

use crate::tmpl::{FuncMap, Value};

use super::add;
use super::conv::{MAX_OUTPUT, arity, call_error, int_arg, str_arg, string, to_i64};

const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const NUMERIC: &[u8] = b"0123456789";
const ALPHANUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub(crate) fn register(m: &mut FuncMap) {
    rand_string(m, "randAlphaNum", ALPHANUM);
    rand_string(m, "randAlpha", ALPHA);
    rand_string(m, "randNumeric", NUMERIC);
    add(m, "randAscii", |a| {
        arity("randAscii", a, 1, 1)?;
        let n = count("randAscii", &a[0])?;
        let mut rng = rand::rng();
        Ok(string(
            (0..n)
                .map(|_| char::from(rng.random_range(32u8..=126)))
                .collect::<String>(),
        ))
    });
    add(m, "randBytes", |a| {
        arity("randBytes", a, 1, 1)?;
        let n = count("randBytes", &a[0])?;
        let mut bytes = vec![0u8; n];
        rand::rng().fill(&mut bytes[..]);
        Ok(string(STANDARD.encode(bytes)))
    });
    add(m, "randInt", |a| {
        arity("randInt", a, 2, 2)?;
        let (min, max) = (to_i64(&a[0]), to_i64(&a[1]));
        if max <= min {
            return Err(call_error(
                "randInt",
                "invalid argument to Intn: max must exceed min",
            ));
        }
        Ok(Value::Int(rand::rng().random_range(min..max)))
    });
    add(m, "shuffle", |a| {
        arity("shuffle", a, 1, 1)?;
        let mut chars: Vec<char> = str_arg("shuffle", &a[0])?.chars().collect();
        chars.shuffle(&mut rand::rng());
        Ok(string(chars.into_iter().collect::<String>()))
    });
    add(m, "uuidv4", |a| {
        arity("uuidv4", a, 0, 0)?;
        Ok(string(uuid_v4()))
    });
}

fn count(func: &str, v: &Value) -> crate::tmpl::Result<usize> {
    let n = int_arg(func, v)?;
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_OUTPUT)
        .ok_or_else(|| call_error(func, format!("count {n} is out of range")))
}

fn rand_string(m: &mut FuncMap, name: &'static str, alphabet: &'static [u8]) {
    add(m, name, move |a| {
        arity(name, a, 1, 1)?;
        let n = count(name, &a[0])?;
        let mut rng = rand::rng();
        Ok(string(
            (0..n)
                .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                .collect::<String>(),
        ))
    });
}

/// A random (version 4, RFC 4122 variant) UUID.
pub(crate) fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = super::encoding::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(u, uuid_v4());
    }
}
