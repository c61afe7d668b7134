//! Shared fixtures: the example registry and a minimal valid release to mutate.

#![allow(dead_code)]

use convoy_release::{Registry, Release, ReleaseError};

pub const REGISTRY: &str = "
contexts:
  - {name: dev-us-central1-0, region: us-central1, env: dev, cloud: gcp, clusterName: dev-usc1-0}
  - {name: dev-europe-west1-0, region: europe-west1, env: dev, cloud: gcp, clusterName: dev-euw1-0}
  - {name: dev-asia-east1-0, region: asia-east1, env: dev, cloud: gcp, clusterName: dev-ase1-0}
  - {name: prod-us-central1-0, region: us-central1, env: prod, cloud: gcp, clusterName: prod-usc1-0}
";

pub fn registry() -> Registry {
    Registry::parse(REGISTRY, "contexts.yaml").expect("test registry parses")
}

/// Parses `text` as `release.yaml`, expecting failure; returns one line per diagnostic.
pub fn errors(text: &str) -> Vec<String> {
    match Release::parse_str(text, "release.yaml") {
        Ok(_) => panic!("expected errors, the release parsed:\n{text}"),
        Err(e) => lines(&e),
    }
}

pub fn lines(e: &ReleaseError) -> Vec<String> {
    e.to_string().lines().map(str::to_string).collect()
}

/// Parses and validates against [`registry`], expecting validation errors.
pub fn validation_errors(text: &str) -> Vec<String> {
    let release = Release::parse_str(text, "release.yaml").unwrap_or_else(|e| panic!("parse failed: {e}"));
    match release.validate(&registry()) {
        Ok(()) => panic!("expected validation errors"),
        Err(e) => lines(&e),
    }
}

pub fn assert_has(lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|l| l == expected),
        "no line equal to\n  {expected}\nin\n  {}",
        lines.join("\n  ")
    );
}

pub const MINIMAL: &str = "apiVersion: convoy.dev/v1
kind: Release
metadata:
  name: app1.ns1
spec:
  chart: {path: ./chart}
  contexts: [dev-us-central1-0, dev-europe-west1-0]
";
