//! convoy-chart: renders Helm charts natively (no `helm` binary).
#![forbid(unsafe_code)]
