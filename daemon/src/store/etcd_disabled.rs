//! The etcd backend in a build without the `etcd` feature (the CLI's demo links the
//! coordinator this way, so that it builds without `protoc`). The configuration
//! refuses `store.backend: etcd` in such a build (see `config`), so nothing reaches
//! this module; its types exist so the server compiles unchanged. `Leadership` and
//! `EtcdStore` have no values at all: no code path can act as a leader here.

use std::time::Duration;

use tokio::sync::watch;

use super::StoreError;

fn unavailable() -> StoreError {
    StoreError::Backend {
        path: "etcd".into(),
        message: "this convoyd was built without the `etcd` cargo feature".into(),
    }
}

pub use super::etcd_settings::{EtcdCredentials, EtcdSettings, EtcdTls};

/// Never constructed in this build.
#[derive(Debug)]
pub enum Leadership {}

impl Leadership {
    pub fn lost(&self) -> watch::Receiver<Option<String>> {
        match *self {}
    }

    pub async fn resign(self) {
        match self {}
    }
}

/// Never constructed in this build.
#[derive(Debug)]
pub enum EtcdStore {}

impl EtcdStore {
    pub fn fenced(_: EtcdSettings, leadership: &Leadership) -> Result<super::MemoryStore, StoreError> {
        match *leadership {}
    }
}

/// What one campaign found.
#[derive(Debug)]
pub enum Campaign {
    Won(Leadership),
    Standby(String),
}

/// Refused at construction in this build.
#[derive(Debug)]
pub struct Candidate(());

impl Candidate {
    pub fn new(_: &EtcdSettings, _: String, _: Duration) -> Result<Self, StoreError> {
        Err(unavailable())
    }

    pub async fn campaign(&self) -> Result<Campaign, StoreError> {
        Err(unavailable())
    }

    pub async fn lead(&self, _: &watch::Sender<String>, _: Duration) -> Leadership {
        std::future::pending().await
    }
}
