//! Path and URL functions (sprig `functions.go` path/filepath entries, `url.go`). Helm runs on
//! Unix here, so the `os*` variants are the slash-separated ones.

use std::sync::Arc;

use crate::tmpl::{Dict, FuncMap, Value};

use super::add;
use super::conv::{arity, call_error, map, map_arg, str_arg, string, strval};

pub(crate) fn register(m: &mut FuncMap) {
    for (name, f) in [
        ("base", base as fn(&str) -> String),
        ("dir", dir),
        ("clean", clean),
        ("ext", ext),
        ("osBase", base),
        ("osDir", dir),
        ("osClean", clean),
        ("osExt", ext),
    ] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            Ok(string(f(str_arg(name, &a[0])?)))
        });
    }
    for name in ["isAbs", "osIsAbs"] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            Ok(Value::Bool(str_arg(name, &a[0])?.starts_with('/')))
        });
    }
    add(m, "getHostByName", |a| {
        arity("getHostByName", a, 1, 1)?;
        host_by_name(str_arg("getHostByName", &a[0])?)
    });
    add(m, "urlParse", |a| {
        arity("urlParse", a, 1, 1)?;
        url_parse(str_arg("urlParse", &a[0])?)
    });
    add(m, "urlJoin", |a| {
        arity("urlJoin", a, 1, 1)?;
        let d = map_arg("urlJoin", &a[0])?;
        let get = |k: &str| d.get(k).map(|v| strval(&v)).unwrap_or_default();
        Ok(string(url_join(
            &get("scheme"),
            &get("userinfo"),
            &get("host"),
            &get("path"),
            &get("query"),
            &get("opaque"),
            &get("fragment"),
        )))
    });
}

/// sprig's `getHostByName`: one of the addresses DNS returns for `name`, chosen at random.
fn host_by_name(name: &str) -> crate::tmpl::Result<Value> {
    use rand::seq::IndexedRandom;
    use std::net::ToSocketAddrs;
    let addrs: Vec<String> = (name, 0)
        .to_socket_addrs()
        .map(|it| it.map(|a| a.ip().to_string()).collect())
        .unwrap_or_default();
    addrs
        .choose(&mut rand::rng())
        .map(|a| string(a.as_str()))
        .ok_or_else(|| call_error("getHostByName", format!("no addresses found for host {name:?}")))
}

/// Go's `path.Clean`: lexical processing of `.`, `..` and repeated slashes.
pub(crate) fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `path.Base`.
pub(crate) fn base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Go's `path.Dir`.
pub(crate) fn dir(p: &str) -> String {
    let cut = p.rfind('/').map(|i| i + 1).unwrap_or(0);
    clean(&p[..cut])
}

/// Go's `path.Ext`.
pub(crate) fn ext(p: &str) -> String {
    for (i, c) in p.char_indices().rev() {
        match c {
            '/' => break,
            '.' => return p[i..].to_string(),
            _ => {}
        }
    }
    String::new()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn url_parse(raw: &str) -> crate::tmpl::Result<Value> {
    if raw.chars().any(|c| c.is_control()) {
        return Err(call_error(
            "urlParse",
            format!("unable to parse url: parse {raw:?}: net/url: invalid control character in URL"),
        ));
    }
    let (rest, fragment) = match raw.split_once('#') {
        Some((r, f)) => (r, percent_decode(f)),
        None => (raw, String::new()),
    };
    let mut scheme = "";
    let mut rest = rest;
    if let Some(colon) = rest.find(':') {
        let cand = &rest[..colon];
        let valid = cand.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && cand
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if valid {
            scheme = cand;
            rest = &rest[colon + 1..];
        }
    }
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (mut userinfo, mut host, mut path, mut opaque) = ("", "", rest, "");
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find('/').unwrap_or(after.len());
        let authority = &after[..end];
        path = &after[end..];
        match authority.rsplit_once('@') {
            Some((u, h)) => {
                userinfo = u;
                host = h;
            }
            None => host = authority,
        }
    } else if !scheme.is_empty() && !rest.starts_with('/') {
        opaque = rest;
        path = "";
    }
    let hostname = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    let mut d = Dict::new();
    for (k, v) in [
        ("scheme", scheme.to_string()),
        ("host", host.to_string()),
        ("hostname", hostname.to_string()),
        ("path", percent_decode(path)),
        ("query", query.to_string()),
        ("opaque", opaque.to_string()),
        ("fragment", fragment),
        ("userinfo", userinfo.to_string()),
    ] {
        d.insert(Arc::from(k), string(v));
    }
    Ok(map(d))
}

/// Go's `url.URL.String()` for the parts `urlJoin` takes.
fn url_join(
    scheme: &str,
    userinfo: &str,
    host: &str,
    path: &str,
    query: &str,
    opaque: &str,
    fragment: &str,
) -> String {
    let mut out = String::new();
    if !scheme.is_empty() {
        out.push_str(scheme);
        out.push(':');
    }
    if !opaque.is_empty() {
        out.push_str(opaque);
    } else {
        if !scheme.is_empty() || !host.is_empty() || !userinfo.is_empty() {
            if !host.is_empty() || !path.is_empty() || !userinfo.is_empty() {
                out.push_str("//");
            }
            if !userinfo.is_empty() {
                out.push_str(userinfo);
                out.push('@');
            }
            out.push_str(host);
        }
        if !path.is_empty() && !path.starts_with('/') && !host.is_empty() {
            out.push('/');
        }
        out.push_str(path);
    }
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    if !fragment.is_empty() {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_go_path_package() {
        assert_eq!(clean("/foo/../foo/../bar"), "/bar");
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("../../x"), "../../x");
        assert_eq!(dir("foo/bar/baz"), "foo/bar");
        assert_eq!(dir("foo"), ".");
        assert_eq!(base("foo/bar/"), "bar");
        assert_eq!(ext("/foo/bar/baz.txt"), ".txt");
        assert_eq!(ext("/foo.d/bar"), "");
    }

    #[test]
    fn urls_parse_and_join() {
        let v = url_parse("proto://auth@host:80/path?query#fragment").unwrap();
        let d = map_arg("t", &v).unwrap();
        assert_eq!(d.get("host"), Some(string("host:80")));
        assert_eq!(d.get("hostname"), Some(string("host")));
        assert_eq!(d.get("userinfo"), Some(string("auth")));
        assert_eq!(
            url_join("proto", "", "host:80", "/path", "query", "", "fragment"),
            "proto://host:80/path?query#fragment"
        );
    }
}
