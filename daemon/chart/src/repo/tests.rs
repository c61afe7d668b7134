//! Repository access against a real HTTP server on 127.0.0.1:0 serving packaged charts.

use super::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A minimal HTTP/1.1 file server: serves `files` by path, requires `auth` (the exact
/// Authorization header) when set, counts requests per path.
struct Server {
    url: String,
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
}

fn serve(files: BTreeMap<String, Vec<u8>>, auth: Option<String>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(BTreeMap::new()));
    let h = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut authorization = None;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                {
                    authorization = Some(v.trim().to_string());
                }
            }
            *h.lock().unwrap().entry(path.clone()).or_default() += 1;
            let (status, body) = if auth.is_some() && authorization != auth {
                ("401 Unauthorized", b"no".to_vec())
            } else {
                match files.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"missing".to_vec()),
                }
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    Server { url, hits }
}

fn packaged(version: &str) -> Vec<u8> {
    crate::chart::tests::tgz(
        "app",
        &[
            (
                "Chart.yaml",
                &format!("apiVersion: v2\nname: app\nversion: {version}\n"),
            ),
            (
                "templates/cm.yaml",
                "kind: ConfigMap\nmetadata:\n  name: {{ .Chart.Version }}\n",
            ),
        ],
    )
}

fn repo_files(digest_override: Option<&str>) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut index = String::from("apiVersion: v1\nentries:\n  app:\n");
    for v in ["1.2.0", "1.4.3", "1.5.0-rc.1", "2.0.0"] {
        let tgz = packaged(v);
        let digest = digest_override.map_or_else(|| sha256_hex(&tgz), str::to_string);
        index.push_str(&format!(
            "  - name: app\n    version: {v}\n    digest: {digest}\n    urls: [charts/app-{v}.tgz]\n"
        ));
        files.insert(format!("/charts/app-{v}.tgz"), tgz);
    }
    files.insert("/index.yaml".into(), index.into_bytes());
    files
}

#[test]
fn semver_ranges_pick_the_highest_match() {
    let server = serve(repo_files(None), None);
    let opts = RepoOptions::default();
    for (range, want) in [
        ("^1.2", "1.4.3"),
        ("~1.2.0", "1.2.0"),
        (">=1.0 <2.0", "1.4.3"),
        ("*", "2.0.0"),
        ("1.5.0-rc.1", "1.5.0-rc.1"),
    ] {
        let bytes = fetch_chart(&server.url, "app", range, &opts).unwrap();
        assert_eq!(
            crate::Chart::load_archive(&bytes).unwrap().version(),
            want,
            "{range}"
        );
    }
    let e = fetch_chart(&server.url, "app", "^3", &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no version of chart \"app\" matches \"^3\""), "{e}");
    let e = fetch_chart(&server.url, "nope", "*", &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("chart \"nope\" not found"), "{e}");
}

#[test]
fn basic_and_bearer_auth() {
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("u:s3cret")
    );
    let server = serve(repo_files(None), Some(basic));
    let good = RepoOptions {
        auth: Some(Auth::Basic {
            username: "u".into(),
            password: "s3cret".into(),
        }),
        ..Default::default()
    };
    assert!(fetch_chart(&server.url, "app", "^1", &good).is_ok());
    let bad = RepoOptions {
        auth: Some(Auth::Basic {
            username: "u".into(),
            password: "wrong-pw".into(),
        }),
        ..Default::default()
    };
    let e = fetch_chart(&server.url, "app", "^1", &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("401") && !e.contains("wrong-pw"), "{e}");
    assert!(!format!("{bad:?}").contains("wrong-pw"));

    let server = serve(repo_files(None), Some("Bearer t0ken".into()));
    let opts = RepoOptions {
        auth: Some(Auth::Bearer("t0ken".into())),
        ..Default::default()
    };
    assert!(fetch_chart(&server.url, "app", "^1", &opts).is_ok());
    assert!(fetch_chart(&server.url, "app", "^1", &RepoOptions::default()).is_err());
}

#[test]
fn cache_is_keyed_by_digest_and_verified() {
    let server = serve(repo_files(None), None);
    let dir = tempfile::tempdir().unwrap();
    let opts = RepoOptions {
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let first = fetch_chart(&server.url, "app", "1.2.0", &opts).unwrap();
    let second = fetch_chart(&server.url, "app", "1.2.0", &opts).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        server.hits.lock().unwrap().get("/charts/app-1.2.0.tgz"),
        Some(&1),
        "second fetch must come from the cache"
    );
    assert!(dir.path().join(format!("{}.tgz", sha256_hex(&first))).exists());

    let tampered = serve(repo_files(Some(&"0".repeat(64))), None);
    let e = fetch_chart(&tampered.url, "app", "1.2.0", &RepoOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("digest mismatch"), "{e}");
}

#[test]
fn urls_resolve_and_redact() {
    assert_eq!(
        resolve_url("http://h:1/repo/", "charts/a.tgz"),
        "http://h:1/repo/charts/a.tgz"
    );
    assert_eq!(resolve_url("http://h:1/repo", "/x/a.tgz"), "http://h:1/x/a.tgz");
    assert_eq!(
        resolve_url("http://h/repo", "https://cdn/a.tgz"),
        "https://cdn/a.tgz"
    );
    assert_eq!(redact("https://user:pw@host/x"), "https://host/x");
    assert_eq!(origin("https://user:pw@Host:8/x"), Some("https://host:8".into()));
}
