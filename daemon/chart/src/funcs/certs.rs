//! Keys and certificates (sprig `crypto.go`): `genPrivateKey`, `genCA`, `genCAWithKey`,
//! `genSelfSignedCert(WithKey)`, `genSignedCert(WithKey)`, `buildCustomCert`.
//!
//! Certificates are built with `rcgen` on `ring`, with sprig's template: random 128-bit
//! serial, `CN` subject, validity from now for `daysValid` days, server and client auth,
//! and `keyCertSign` plus `CA:TRUE` for CAs. The results are dicts with `Cert` and `Key` PEM
//! strings, as sprig's `certificate` struct.
//!
//! One deliberate difference: `ring` cannot generate RSA or DSA keys, so generated keys are
//! ECDSA P-256 (`EC PRIVATE KEY`) where sprig makes RSA-2048, and `genPrivateKey "rsa"` /
//! `"dsa"` fail with an explanation. Keys passed in (`*WithKey`, `buildCustomCert`) may be
//! RSA, ECDSA or Ed25519, in PKCS#1, SEC1 or PKCS#8 PEM.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair};

use crate::tmpl::{Dict, FuncMap, Value};

use super::add;
use super::conv::{arity, call_error, int_arg, list_items, map, map_arg, str_arg, string, strval};

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "genPrivateKey", |a| {
        arity("genPrivateKey", a, 1, 1)?;
        gen_private_key(str_arg("genPrivateKey", &a[0])?)
            .map(string)
            .map_err(|e| call_error("genPrivateKey", e))
    });
    add(m, "genCA", |a| {
        arity("genCA", a, 2, 2)?;
        let f = "genCA";
        let key = new_key(f)?;
        ca(f, str_arg(f, &a[0])?, int_arg(f, &a[1])?, key)
    });
    add(m, "genCAWithKey", |a| {
        arity("genCAWithKey", a, 3, 3)?;
        let f = "genCAWithKey";
        let key = load_key(f, str_arg(f, &a[2])?)?;
        ca(f, str_arg(f, &a[0])?, int_arg(f, &a[1])?, key)
    });
    add(m, "genSelfSignedCert", |a| {
        arity("genSelfSignedCert", a, 4, 4)?;
        let f = "genSelfSignedCert";
        let key = new_key(f)?;
        leaf(f, a, key, None)
    });
    add(m, "genSelfSignedCertWithKey", |a| {
        arity("genSelfSignedCertWithKey", a, 5, 5)?;
        let f = "genSelfSignedCertWithKey";
        let key = load_key(f, str_arg(f, &a[4])?)?;
        leaf(f, a, key, None)
    });
    add(m, "genSignedCert", |a| {
        arity("genSignedCert", a, 5, 5)?;
        let f = "genSignedCert";
        let key = new_key(f)?;
        leaf(f, a, key, Some(&a[4]))
    });
    add(m, "genSignedCertWithKey", |a| {
        arity("genSignedCertWithKey", a, 6, 6)?;
        let f = "genSignedCertWithKey";
        let key = load_key(f, str_arg(f, &a[5])?)?;
        leaf(f, a, key, Some(&a[4]))
    });
    add(m, "buildCustomCert", |a| {
        arity("buildCustomCert", a, 2, 2)?;
        let f = "buildCustomCert";
        let decode = |v: &Value, what: &str| -> crate::tmpl::Result<String> {
            let bytes = STANDARD
                .decode(str_arg(f, v)?)
                .map_err(|_| call_error(f, format!("unable to decode base64 {what}")))?;
            String::from_utf8(bytes).map_err(|_| call_error(f, format!("{what} is not PEM text")))
        };
        let cert = decode(&a[0], "certificate")?;
        let key = decode(&a[1], "private key")?;
        pem_decode(&cert, "CERTIFICATE")
            .ok_or_else(|| call_error(f, "error parsing certificate: no CERTIFICATE PEM block"))?;
        load_key(f, &key)?;
        Ok(cert_value(cert, key))
    });
}

/// A key pair plus the PEM text handed back to the template.
struct Key {
    pair: KeyPair,
    pem: String,
}

fn cert_value(cert: String, key: String) -> Value {
    let mut m = Dict::new();
    m.insert("Cert".into(), string(cert));
    m.insert("Key".into(), string(key));
    map(m)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER body of the first PEM block with `label`.
fn pem_decode(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(body).ok()
}

// --- minimal DER, enough to move keys between PKCS#1, SEC1 and PKCS#8 ---

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// Splits DER into (tag, content) elements.
fn der_elements(mut input: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let tag = *input.first()?;
        let first = *input.get(1)?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for b in input.get(2..2 + n)? {
                len = (len << 8) | usize::from(*b);
            }
            (len, 2 + n)
        };
        let content = input.get(header..header.checked_add(len)?)?;
        out.push((tag, content));
        input = &input[header + len..];
    }
    Some(out)
}

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// PKCS#8 `PrivateKeyInfo` around a key in its own format.
fn pkcs8_wrap(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut body = der(0x02, &[0]);
    body.extend(der(0x30, algorithm));
    body.extend(der(0x04, key));
    der(0x30, &body)
}

/// SEC1 `ECPrivateKey` (with the curve named, as Go writes it) from ring's PKCS#8.
fn pkcs8_ec_to_sec1(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let outer = der_elements(pkcs8)?;
    let info = der_elements(outer.first()?.1)?;
    let alg = der_elements(info.get(1)?.1)?;
    let curve = alg.get(1)?.1;
    let ec = der_elements(info.get(2)?.1)?;
    let fields = der_elements(ec.first()?.1)?;
    let private = fields.get(1)?.1;
    let public = fields.iter().find(|(t, _)| *t == 0xa1)?.1;
    let mut body = der(0x02, &[1]);
    body.extend(der(0x04, private));
    body.extend(der(0xa0, &der(0x06, curve)));
    body.extend(der(0xa1, public));
    Some(der(0x30, &body))
}

/// PKCS#8 from SEC1 (the `[0]` curve parameter moves into the algorithm identifier).
fn sec1_to_pkcs8(sec1: &[u8]) -> Option<Vec<u8>> {
    let outer = der_elements(sec1)?;
    let fields = der_elements(outer.first()?.1)?;
    let curve_oid = fields
        .iter()
        .find(|(t, _)| *t == 0xa0)
        .and_then(|(_, c)| der_elements(c))
        .and_then(|e| e.first().map(|(_, oid)| oid.to_vec()))
        .unwrap_or_else(|| OID_P256.to_vec());
    let mut inner = Vec::new();
    for (tag, content) in &fields {
        if *tag != 0xa0 {
            inner.extend(der(*tag, content));
        }
    }
    let mut alg = der(0x06, OID_EC_PUBLIC_KEY);
    alg.extend(der(0x06, &curve_oid));
    Some(pkcs8_wrap(&alg, &der(0x30, &inner)))
}

fn new_key(func: &str) -> crate::tmpl::Result<Key> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| call_error(func, "generating an ECDSA P-256 key failed"))?;
    let sec1 = pkcs8_ec_to_sec1(pkcs8.as_ref())
        .ok_or_else(|| call_error(func, "re-encoding the generated key failed"))?;
    let pair = KeyPair::try_from(pkcs8.as_ref())
        .map_err(|e| call_error(func, format!("loading the generated key failed: {e}")))?;
    Ok(Key {
        pair,
        pem: pem_encode("EC PRIVATE KEY", &sec1),
    })
}

/// Loads a PEM private key (PKCS#1 RSA, SEC1 EC or PKCS#8); errors never echo key material.
fn load_key(func: &str, pem: &str) -> crate::tmpl::Result<Key> {
    let pkcs8 = if let Some(body) = pem_decode(pem, "PRIVATE KEY") {
        Some(body)
    } else if let Some(body) = pem_decode(pem, "RSA PRIVATE KEY") {
        let mut alg = der(0x06, OID_RSA);
        alg.extend([0x05, 0x00]);
        Some(pkcs8_wrap(&alg, &body))
    } else if let Some(body) = pem_decode(pem, "EC PRIVATE KEY") {
        sec1_to_pkcs8(&body)
    } else {
        None
    };
    let pkcs8 = pkcs8.ok_or_else(|| {
        call_error(
            func,
            "error parsing private key: expected a PEM block \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\"",
        )
    })?;
    let pair = KeyPair::try_from(pkcs8.as_slice()).map_err(|_| {
        call_error(
            func,
            "error parsing private key: unsupported or malformed key (RSA, ECDSA P-256/P-384 and Ed25519 are supported)",
        )
    })?;
    Ok(Key {
        pair,
        pem: pem.to_string(),
    })
}

/// `genPrivateKey`: ECDSA P-256 (SEC1) and Ed25519 (PKCS#8), as sprig encodes them.
fn gen_private_key(kind: &str) -> Result<String, String> {
    let rng = SystemRandom::new();
    match kind {
        "ecdsa" => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .map_err(|_| "failed to generate private key".to_string())?;
            let sec1 =
                pkcs8_ec_to_sec1(pkcs8.as_ref()).ok_or_else(|| "failed to encode private key".to_string())?;
            Ok(pem_encode("EC PRIVATE KEY", &sec1))
        }
        "ed25519" => {
            let mut seed = [0u8; 32];
            rand::rng().fill(&mut seed);
            // Check the seed makes a valid key, then write Go's PKCS#8 v1 form.
            Ed25519KeyPair::from_seed_unchecked(&seed)
                .map_err(|_| "failed to generate private key".to_string())?;
            let pkcs8 = pkcs8_wrap(&der(0x06, OID_ED25519), &der(0x04, &seed));
            Ok(pem_encode("PRIVATE KEY", &pkcs8))
        }
        "rsa" | "dsa" => Err(format!(
            "{kind} key generation is not available in this engine (ring cannot generate {kind} keys); use \"ecdsa\" or \"ed25519\", or pass an existing key to the *WithKey functions"
        )),
        other => Ok(format!("Unknown type {other}")),
    }
}

/// sprig's `getBaseCertTemplate`.
fn base_params(
    func: &str,
    cn: &str,
    ips: &[Value],
    dns: &[Value],
    days: i64,
) -> crate::tmpl::Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    let mut serial = [0u8; 16];
    rand::rng().fill(&mut serial);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let days = u64::try_from(days).map_err(|_| call_error(func, "daysValid must not be negative"))?;
    let valid = std::time::Duration::from_secs(days.saturating_mul(86_400).min(200 * 365 * 86_400));
    params.not_before = epoch + std::time::Duration::from_secs(now.as_secs());
    params.not_after = params.not_before + valid;
    for ip in ips {
        let text = strval(ip);
        let addr: IpAddr = text
            .parse()
            .map_err(|_| call_error(func, format!("error parsing ip: {text}")))?;
        params.subject_alt_names.push(SanType::IpAddress(addr));
    }
    for name in dns {
        let text = strval(name);
        let ia5 = text
            .clone()
            .try_into()
            .map_err(|_| call_error(func, format!("invalid DNS name: {text}")))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    Ok(params)
}

fn ca(func: &str, cn: &str, days: i64, key: Key) -> crate::tmpl::Result<Value> {
    let mut params = base_params(func, cn, &[], &[], days)?;
    params.key_usages.push(KeyUsagePurpose::KeyCertSign);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params
        .self_signed(&key.pair)
        .map_err(|e| call_error(func, format!("error generating certificate: {e}")))?;
    Ok(cert_value(cert.pem(), key.pem))
}

/// Self-signed (`ca` is None) or CA-signed leaf certificate; arguments are
/// `cn, ips, alternateDNS, daysValid[, ca]`.
fn leaf(func: &str, a: &[Value], key: Key, ca: Option<&Value>) -> crate::tmpl::Result<Value> {
    let cn = str_arg(func, &a[0])?;
    let ips = list_items(func, &a[1])?;
    let dns = list_items(func, &a[2])?;
    let days = int_arg(func, &a[3])?;
    let params = base_params(func, cn, ips, dns, days)?;
    let cert = match ca {
        None => params.self_signed(&key.pair),
        Some(ca) => {
            let ca = map_arg(func, ca)?;
            let field = |k: &str| {
                ca.get(k)
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            };
            let ca_key = load_key(func, &field("Key"))?;
            let issuer = Issuer::from_ca_cert_pem(&field("Cert"), ca_key.pair).map_err(|_| {
                call_error(
                    func,
                    "error parsing the CA certificate (expected the Cert of genCA)",
                )
            })?;
            params.signed_by(&key.pair, &issuer)
        }
    }
    .map_err(|e| call_error(func, format!("error generating certificate: {e}")))?;
    Ok(cert_value(cert.pem(), key.pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: &Value, k: &str) -> String {
        map_arg("t", v)
            .ok()
            .and_then(|m| m.get(k))
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    #[test]
    fn generated_keys_have_sprig_pem_labels_and_reload() {
        let ec = gen_private_key("ecdsa").unwrap();
        assert!(ec.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        load_key("t", &ec).unwrap();
        let ed = gen_private_key("ed25519").unwrap();
        assert!(ed.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        load_key("t", &ed).unwrap();
        assert!(gen_private_key("rsa").is_err());
        assert_eq!(gen_private_key("foo").unwrap(), "Unknown type foo");
        assert!(load_key("t", "not a key").is_err());
    }

    #[test]
    fn ca_signs_leaf_certificates() {
        let key = new_key("t").unwrap();
        let ca_value = ca("t", "my-ca", 365, key).unwrap();
        assert!(field(&ca_value, "Cert").starts_with("-----BEGIN CERTIFICATE-----\n"));
        let args = [
            Value::String("svc.example".into()),
            Value::List(vec![Value::String("10.0.0.1".into())].into()),
            Value::List(vec![Value::String("svc.example".into())].into()),
            Value::Int(30),
            ca_value.clone(),
        ];
        let leaf_value = leaf("t", &args, new_key("t").unwrap(), Some(&ca_value)).unwrap();
        let der = pem_decode(&field(&leaf_value, "Cert"), "CERTIFICATE").unwrap();
        let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"my-ca"), "issuer name is in the certificate");
        assert!(contains(b"svc.example"));
        assert!(contains(&[10, 0, 0, 1]), "IP SAN is in the certificate");
        // The leaf can itself act as issuer input only if it parses as a certificate.
        let reload = load_key("t", &field(&leaf_value, "Key")).unwrap();
        assert!(Issuer::from_ca_cert_pem(&field(&leaf_value, "Cert"), reload.pair).is_ok());
        let bad = [
            args[0].clone(),
            Value::List(vec![Value::String("nope".into())].into()),
            args[2].clone(),
            Value::Int(1),
        ];
        assert!(leaf("t", &bad, new_key("t").unwrap(), None).is_err());
    }
}
