//! `convoy package` and `convoy push`: Helm's `helm package` and `helm push`, natively.
//! A chart is packaged as `NAME-VERSION.tgz` and pushed to an OCI registry in Helm's
//! layout, where a coordinator (`spec.chart.oci`) or Helm can pull it.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

const PACKAGE_EXAMPLES: &str = "\
Examples:
  # Package ./charts/app1 as ./app1-1.4.2.tgz (name and version from its Chart.yaml)
  convoy package ./charts/app1

  # Into another directory
  convoy package ./charts/app1 -d ./dist";

const PUSH_EXAMPLES: &str = "\
Examples:
  # Push to oci://registry.example.com/charts/app1:1.4.2 (basic auth from the environment)
  CONVOY_REPO_USERNAME=ci CONVOY_REPO_PASSWORD=... \\
      convoy push app1-1.4.2.tgz oci://registry.example.com/charts

  # A registry without TLS (on loopback)
  convoy push app1-1.4.2.tgz oci://127.0.0.1:5000/charts --plain-http";

/// Package a chart directory into a versioned archive, as `helm package` does.
#[derive(Debug, Args)]
#[command(after_help = PACKAGE_EXAMPLES)]
pub struct PackageArgs {
    /// The chart directory.
    #[arg(value_name = "CHART_DIR")]
    chart: PathBuf,
    /// Where to write NAME-VERSION.tgz (default: the current directory).
    #[arg(short = 'd', long = "destination", value_name = "DIR", default_value = ".")]
    destination: PathBuf,
}

/// Push a packaged chart to an OCI registry, as `helm push` does: to
/// REMOTE/NAME:VERSION, NAME and VERSION from the chart's Chart.yaml.
#[derive(Debug, Args)]
#[command(after_help = PUSH_EXAMPLES)]
pub struct PushArgs {
    /// The packaged chart (.tgz).
    #[arg(value_name = "CHART.tgz")]
    chart: PathBuf,
    /// `oci://REGISTRY/PATH` (the chart's name is appended).
    #[arg(value_name = "REMOTE")]
    remote: String,
    /// Talk plain HTTP to the registry (no TLS).
    #[arg(long = "plain-http")]
    plain_http: bool,
    /// Registry user name (basic auth).
    #[arg(long, env = "CONVOY_REPO_USERNAME")]
    username: Option<String>,
    /// Registry password (basic auth); prefer the environment variable.
    #[arg(long, env = "CONVOY_REPO_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Registry bearer token; prefer the environment variable.
    #[arg(long, env = "CONVOY_REPO_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Runs `convoy package`: prints the archive's path.
pub fn package(a: PackageArgs) -> anyhow::Result<()> {
    let chart = convoy_chart::Chart::load_dir(&a.chart)
        .with_context(|| format!("{}: not a chart directory", a.chart.display()))?;
    let archive =
        convoy_chart::package_dir(&a.chart).with_context(|| format!("packaging {}", a.chart.display()))?;
    std::fs::create_dir_all(&a.destination)
        .with_context(|| format!("creating {}", a.destination.display()))?;
    let out = a
        .destination
        .join(format!("{}-{}.tgz", chart.name(), chart.version()));
    std::fs::write(&out, archive).with_context(|| format!("writing {}", out.display()))?;
    println!("Successfully packaged chart and saved it to: {}", out.display());
    Ok(())
}

/// Runs `convoy push`: prints the pushed reference and its digest.
pub fn push(a: PushArgs) -> anyhow::Result<()> {
    use convoy_sources::{ChartSources, Credentials};
    let archive = std::fs::read(&a.chart).with_context(|| format!("reading {}", a.chart.display()))?;
    let credentials = match (a.token, a.username, a.password) {
        (Some(t), _, _) => Credentials::Bearer(t),
        (None, Some(u), p) => Credentials::Basic(u, p.unwrap_or_default()),
        _ => Credentials::Anonymous,
    };
    let sources = ChartSources::direct(credentials, a.plain_http);
    let pushed = crate::offline::block_on(convoy_sources::push_chart(&archive, &a.remote, &sources))?
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.chart.display()))?;
    println!("Pushed: {}\nDigest: {}", pushed.reference, pushed.digest);
    Ok(())
}
