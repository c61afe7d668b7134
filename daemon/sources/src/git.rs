//! `spec.chart.git`: the chart directory of a git repository at a tag, branch or
//! commit, fetched with gitoxide (`gix`, no `git` binary): a shallow, bare fetch of that
//! one revision into a scratch directory, the directory read from the commit's tree and
//! packaged. Credentials come only from the coordinator's config, through gix's
//! credential callback: no git credential helper, askpass or prompt is ever run.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::tls::SourceTls;

/// The packaged chart at `dir` of `url` at `reference`, and the commit id it came from.
pub(super) fn fetch(
    url: &str,
    reference: &str,
    dir: &str,
    credentials: Option<gix::sec::identity::Credentials>,
    tls: &SourceTls,
) -> Result<(Vec<u8>, String), String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("scratch directory: {e}"))?;
    let repo = checkout(url, reference, credentials, tls, scratch.path())?;
    read_chart(&repo, reference, dir)
}

/// The file at `path` of `url` at `reference`, and the commit id it came from.
pub(super) fn fetch_file(
    url: &str,
    reference: &str,
    path: &str,
    credentials: Option<gix::sec::identity::Credentials>,
    tls: &SourceTls,
) -> Result<(Vec<u8>, String), String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("scratch directory: {e}"))?;
    let repo = checkout(url, reference, credentials, tls, scratch.path())?;
    let head = repo
        .head_commit()
        .map_err(|e| format!("{reference}: no commit fetched: {e}"))?;
    let commit = head.id.to_string();
    let tree = head.tree().map_err(|e| format!("{reference} ({commit}): {e}"))?;
    let entry = tree
        .lookup_entry_by_path(path)
        .map_err(|e| format!("{reference} ({commit}): {path}: {e}"))?
        .filter(|e| e.mode().is_blob())
        .ok_or_else(|| format!("{reference} ({commit}): no file {path:?} in the repository"))?;
    let data = entry
        .object()
        .map_err(|e| format!("{reference} ({commit}): {path}: {e}"))?
        .detach()
        .data;
    Ok((data, commit))
}

/// A bare repository under `scratch` holding `reference` of `url` (shallow).
fn checkout(
    url: &str,
    reference: &str,
    credentials: Option<gix::sec::identity::Credentials>,
    tls: &SourceTls,
    scratch: &Path,
) -> Result<gix::Repository, String> {
    // A full commit id is fetched as is; a name is tried as a tag, then as a branch.
    let candidates: Vec<String> = if reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit())
    {
        vec![reference.to_ascii_lowercase()]
    } else {
        vec![
            format!("refs/tags/{reference}"),
            format!("refs/heads/{reference}"),
        ]
    };
    let mut last = String::new();
    for (i, revision) in candidates.iter().enumerate() {
        match fetch_revision(
            url,
            revision,
            credentials.clone(),
            tls,
            &scratch.join(i.to_string()),
        ) {
            Ok(repo) => return Ok(repo),
            Err(e) => last = e,
        }
    }
    Err(format!(
        "cannot fetch {reference:?} (a tag, branch or commit): {last}"
    ))
}

fn fetch_revision(
    url: &str,
    revision: &str,
    credentials: Option<gix::sec::identity::Credentials>,
    tls: &SourceTls,
    into: &Path,
) -> Result<gix::Repository, String> {
    use gix::credentials::helper::Action;
    let prepare = gix::prepare_clone_bare(url, into).map_err(|e| e.to_string())?;
    let tls = (!tls.is_empty()).then(|| tls.clone());
    let mut prepare = prepare
        .configure_connection(move |conn| {
            if let Some(tls) = &tls {
                conn.set_transport_options(Box::new(transport_options(tls)));
            }
            let credentials = credentials.clone();
            conn.set_credentials(move |action| match (action, &credentials) {
                (Action::Get(ctx), Some(c)) => Ok(Some(gix::credentials::protocol::Outcome {
                    credentials: c.clone(),
                    next: ctx.into(),
                })),
                // No credentials configured for this source: none are looked for.
                _ => Ok(None),
            });
            Ok(())
        })
        .with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(NonZeroU32::MIN))
        .with_revision(Some(revision))
        .map_err(|e| e.to_string())?;
    let (repo, _) = prepare
        .fetch_only(gix::progress::Discard, &AtomicBool::new(false))
        .map_err(|e| describe(&crate::error_chain(&e)))?;
    Ok(repo)
}

/// gix's HTTP options carrying the source's CA and client certificate to the reqwest
/// client it builds.
fn transport_options(tls: &SourceTls) -> gix_transport::client::blocking_io::http::Options {
    use gix::error::ErrorExt as _;
    use gix_transport::client::blocking_io::http;
    let tls = tls.clone();
    let configure: Box<http::reqwest::ConfigureClientFn> = Box::new(move |mut builder| {
        let (roots, identity) = tls
            .reqwest_parts()
            .map_err(|e| std::io::Error::other(e).raise())?;
        if let Some(roots) = roots {
            builder = builder.tls_certs_only(roots);
        }
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        Ok(builder)
    });
    let backend = http::reqwest::Options {
        configure_client: Some(configure),
        configure_request: None,
    };
    http::Options {
        backend: Some(std::sync::Arc::new(std::sync::Mutex::new(backend))),
        ..Default::default()
    }
}

/// gix's error, with an authentication or TLS failure said plainly.
fn describe(e: &str) -> String {
    if let Some(tls) = crate::tls::describe_tls_failure(e) {
        return tls;
    }
    let lower = e.to_ascii_lowercase();
    if e.contains("401")
        || e.contains("403")
        || lower.contains("authenticat")
        || lower.contains("credentials")
    {
        format!(
            "authentication failed (check the coordinator's chart_sources credentials for this repository): {e}"
        )
    } else {
        e.to_string()
    }
}

/// Packages the tree at `dir` of the fetched commit.
fn read_chart(repo: &gix::Repository, reference: &str, dir: &str) -> Result<(Vec<u8>, String), String> {
    let head = repo
        .head_commit()
        .map_err(|e| format!("{reference}: no commit fetched: {e}"))?;
    let commit = head.id.to_string();
    let tree = head.tree().map_err(|e| format!("{reference} ({commit}): {e}"))?;
    let dir = dir.trim_matches('/');
    let entry = tree
        .lookup_entry_by_path(dir)
        .map_err(|e| format!("{reference} ({commit}): {dir}: {e}"))?
        .ok_or_else(|| format!("{reference} ({commit}): no directory {dir:?} in the repository"))?;
    let sub = entry
        .object()
        .map_err(|e| format!("{reference} ({commit}): {dir}: {e}"))?
        .try_into_tree()
        .map_err(|_| format!("{reference} ({commit}): {dir:?} is not a directory"))?;
    let mut recorder = gix::traverse::tree::Recorder::default();
    sub.traverse()
        .breadthfirst(&mut recorder)
        .map_err(|e| format!("{reference} ({commit}): reading {dir}: {e}"))?;
    // Laid out in a scratch directory so the chart is packaged (and `.helmignore`
    // honoured) exactly as a local chart would be.
    let scratch = tempfile::tempdir().map_err(|e| format!("scratch directory: {e}"))?;
    let name = dir
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("chart");
    let root = scratch.path().join(name);
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    for e in recorder.records {
        if !e.mode.is_blob() {
            continue;
        }
        let rel = e.filepath.to_string();
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(format!("{reference} ({commit}): unsafe path {rel:?} in {dir}"));
        }
        let data = repo
            .find_object(e.oid)
            .map_err(|err| format!("{reference} ({commit}): {dir}/{rel}: {err}"))?
            .detach()
            .data;
        let path = root.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| err.to_string())?;
        }
        std::fs::write(&path, data).map_err(|err| err.to_string())?;
    }
    let archive = convoy_chart::package_dir(&root)
        .map_err(|e| format!("{reference} ({commit}): {dir} is not a chart: {e}"))?;
    Ok((archive, commit))
}
