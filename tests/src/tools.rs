//! Where the services' binaries are.

use std::path::{Path, PathBuf};

use crate::ServiceError;

/// The cache `.ci/install-deps` fills: `$CONVOY_CACHE`, else `~/.cache/convoy`.
pub fn cache_dir() -> PathBuf {
    if let Some(c) = std::env::var_os("CONVOY_CACHE") {
        return PathBuf::from(c);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/convoy")
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds `name`: in `KUBEBUILDER_ASSETS`, then in each of `cached`, then on `PATH`.
fn find(service: &str, name: &str, cached: &[PathBuf]) -> Result<PathBuf, ServiceError> {
    let assets = std::env::var_os("KUBEBUILDER_ASSETS").map(|a| PathBuf::from(a).join(name));
    assets
        .into_iter()
        .chain(cached.iter().map(|d| d.join(name)))
        .find(|p| is_executable(p))
        .or_else(|| on_path(name))
        .ok_or_else(|| ServiceError::NotInstalled {
            service: service.to_string(),
            binary: name.to_string(),
        })
}

/// The Kubernetes binaries' cache directory.
pub fn kube_cache() -> PathBuf {
    cache_dir().join("kube-1.20.2/bin")
}

/// `kube-apiserver`.
pub fn kube_apiserver() -> Result<PathBuf, ServiceError> {
    find("kube-apiserver", "kube-apiserver", &[kube_cache()])
}

/// `kube-controller-manager`.
pub fn kube_controller_manager() -> Result<PathBuf, ServiceError> {
    find(
        "kube-controller-manager",
        "kube-controller-manager",
        &[kube_cache()],
    )
}

/// `etcd`.
pub fn etcd() -> Result<PathBuf, ServiceError> {
    find("etcd", "etcd", &[])
}

/// `etcdctl` (Debian's `etcd-client`), to set up a secured etcd's users.
pub fn etcdctl() -> Result<PathBuf, ServiceError> {
    find("etcdctl", "etcdctl", &[])
}

/// Debian's `docker-registry` (CNCF distribution), an OCI registry.
pub fn docker_registry() -> Result<PathBuf, ServiceError> {
    find("docker-registry", "docker-registry", &[])
}

/// Debian's `prometheus`.
pub fn prometheus() -> Result<PathBuf, ServiceError> {
    find("prometheus", "prometheus", &[])
}

/// OpenBao's `bao`.
pub fn bao() -> Result<PathBuf, ServiceError> {
    find("openbao", "bao", &[cache_dir().join("openbao/bin")])
}
