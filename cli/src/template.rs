//! `convoy template`: Helm's `helm template`, natively. The flags are Helm's, so a
//! `helm template ...` command line works with `convoy` in place of `helm`; the work is
//! done by `convoy_chart::TemplateRequest`, the code the conformance tests exercise.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use convoy_chart::ChartError;
use convoy_chart::repo::{Auth, RepoOptions};

const EXAMPLES: &str = "\
Examples:
  # Render a chart directory with the default release name (release-name)
  convoy template ./charts/app1

  # Name the release, pick a namespace, override values
  convoy template app1 ./charts/app1 -n ns1 -f values-prod.yaml --set image.tag=2.3.1

  # Lists, nested keys and strings in --set (Helm's syntax)
  convoy template ./app --set 'hosts={a.example.com,b.example.com}' --set ports[0].port=80 \\
      --set-string build=0123 --set-file config=./app.conf

  # Only some templates, with CRDs, against another Kubernetes version
  convoy template ./app -s templates/deployment.yaml -s 'templates/rbac/*' --include-crds \\
      --kube-version 1.29 --api-versions monitoring.coreos.com/v1

  # From an HTTP chart repository (basic auth; the password can come from the environment)
  CONVOY_REPO_PASSWORD=... convoy template app1 app1 --repo https://charts.example.com \\
      --version '^1.4' --username ci

  # From an OCI registry (a tag or a version range; --plain-http without TLS)
  convoy template app1 oci://registry.example.com/charts/app1 --version 1.4.2

  # One file per template instead of stdout
  convoy template ./app --output-dir ./rendered";

/// Render a Helm chart locally and print the manifests, as `helm template` does.
///
/// CHART is a chart directory, a packaged chart (.tgz), or, with --repo, a chart name in
/// that repository. Without NAME the release is called `release-name`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct TemplateArgs {
    /// `[NAME] CHART`: the release name (optional) and the chart.
    #[arg(value_name = "[NAME] CHART", num_args = 0..=2)]
    args: Vec<String>,
    /// Values file(s) (YAML); later files win. Repeatable.
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    values: Vec<String>,
    /// Set values: `a.b=c,list={x,y},a[0].b=c`. Repeatable; later wins.
    #[arg(long, value_name = "KEY=VAL")]
    set: Vec<String>,
    /// Set values, always as strings.
    #[arg(long = "set-string", value_name = "KEY=VAL")]
    set_string: Vec<String>,
    /// Set values from files: `key=path` (the value is the file's content).
    #[arg(long = "set-file", value_name = "KEY=PATH")]
    set_file: Vec<String>,
    /// Set JSON values: `key={"a":[1,2]}` (numbers are float64, as in Helm). Repeatable;
    /// applied after values files and before `--set`.
    #[arg(long = "set-json", value_name = "KEY=JSON")]
    set_json: Vec<String>,
    /// Namespace of the release (`.Release.Namespace`).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// A Go template for the release name, e.g. `app-{{ randAlphaNum 5 | lower }}`.
    #[arg(long = "name-template", value_name = "TEMPLATE")]
    name_template: Option<String>,
    /// Generate the release name from the chart name.
    #[arg(short = 'g', long = "generate-name")]
    generate_name: bool,
    /// Kubernetes version for `.Capabilities.KubeVersion` (default v1.20.0).
    #[arg(long = "kube-version", value_name = "VERSION")]
    kube_version: Option<String>,
    /// Extra API versions for `.Capabilities.APIVersions`. Repeatable or comma-separated.
    #[arg(
        short = 'a',
        long = "api-versions",
        value_name = "GROUP/VERSION",
        value_delimiter = ','
    )]
    api_versions: Vec<String>,
    /// Include the crds/ files in the output.
    #[arg(long = "include-crds")]
    include_crds: bool,
    /// Leave the crds/ files out (wins over --include-crds).
    #[arg(long = "skip-crds")]
    skip_crds: bool,
    /// Leave out test hooks (`helm.sh/hook: test`).
    #[arg(long = "skip-tests")]
    skip_tests: bool,
    /// Leave out all hooks.
    #[arg(long = "no-hooks")]
    no_hooks: bool,
    /// Only print these templates (`templates/x.yaml`, globs allowed). Repeatable.
    #[arg(short = 's', long = "show-only", value_name = "PATH", value_delimiter = ',')]
    show_only: Vec<String>,
    /// Render as an upgrade (`.Release.IsUpgrade` true, `.Release.IsInstall` false).
    #[arg(long = "is-upgrade")]
    is_upgrade: bool,
    /// Write each template's output to a file under this directory instead of stdout.
    #[arg(long = "output-dir", value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// On invalid YAML output, print what was rendered before the error.
    #[arg(long)]
    debug: bool,
    /// Chart repository URL to take CHART from.
    #[arg(long, value_name = "URL")]
    repo: Option<String>,
    /// Chart version range with --repo (`1.4.2`, `^1.4`, `>=1.0 <2.0`); default: latest.
    #[arg(long, value_name = "RANGE")]
    version: Option<String>,
    /// Repository user name (basic auth).
    #[arg(long, env = "CONVOY_REPO_USERNAME")]
    username: Option<String>,
    /// Repository password (basic auth); prefer the environment variable.
    #[arg(long, env = "CONVOY_REPO_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Repository bearer token; prefer the environment variable.
    #[arg(long, env = "CONVOY_REPO_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// With an `oci://` CHART: talk plain HTTP to the registry (no TLS).
    #[arg(long = "plain-http")]
    plain_http: bool,
}

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("convoy").join("charts"))
}

/// Runs `convoy template`, printing to stdout.
pub fn run(a: TemplateArgs) -> anyhow::Result<()> {
    let auth = match (&a.username, &a.password, &a.token) {
        (_, _, Some(t)) => Some(Auth::Bearer(t.clone())),
        (Some(u), p, None) => Some(Auth::Basic {
            username: u.clone(),
            password: p.clone().unwrap_or_default(),
        }),
        _ => None,
    };
    // An `oci://` chart is pulled first (with --version, a tag or range) and rendered
    // from a scratch copy of its archive.
    let mut args = a.args;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    if let Some(oci) = args.last().filter(|c| c.starts_with("oci://")).cloned() {
        use convoy_sources::{ChartSources, Credentials};
        let version = a
            .version
            .clone()
            .ok_or_else(|| anyhow::anyhow!("{oci}: give --version (a tag or a version range)"))?;
        let credentials = match (&a.token, &a.username) {
            (Some(t), _) => Credentials::Bearer(t.clone()),
            (None, Some(u)) => Credentials::Basic(u.clone(), a.password.clone().unwrap_or_default()),
            _ => Credentials::Anonymous,
        };
        let sources = ChartSources::direct(credentials, a.plain_http);
        let chart = convoy_release::ChartRef::Oci {
            oci: oci.clone(),
            version: Some(version),
            digest: None,
            pos: Default::default(),
        };
        let fetched = crate::offline::block_on(sources.fetch(&chart, ""))?
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| anyhow::anyhow!("{oci}: nothing fetched"))?;
        let path = scratch.path().join("chart.tgz");
        std::fs::write(&path, fetched.archive).context("writing the pulled chart")?;
        if let Some(last) = args.last_mut() {
            *last = path.display().to_string();
        }
    }
    let oci = args
        .last()
        .is_some_and(|c| c.starts_with(&scratch.path().display().to_string()));
    let req = convoy_chart::TemplateRequest {
        args,
        values_files: a.values,
        set: a.set,
        set_string: a.set_string,
        set_json: a.set_json,
        set_file: a.set_file,
        namespace: Some(a.namespace),
        name_template: a.name_template,
        generate_name: a.generate_name,
        kube_version: a.kube_version,
        api_versions: a.api_versions,
        include_crds: a.include_crds,
        skip_crds: a.skip_crds,
        skip_tests: a.skip_tests,
        no_hooks: a.no_hooks,
        show_only: a.show_only,
        is_upgrade: a.is_upgrade,
        output_dir: a.output_dir,
        repo: a.repo,
        version: if oci { None } else { a.version },
        base_dir: std::env::current_dir().context("reading the current directory")?,
        repo_options: RepoOptions {
            auth,
            cache_dir: cache_dir(),
            timeout: None,
            tls: None,
        },
    };
    match req.run() {
        Ok(out) => {
            print!("{out}");
            Ok(())
        }
        Err(ChartError::RenderedYaml {
            source_name,
            message,
            rendered,
        }) => {
            if a.debug {
                print!("{rendered}");
                anyhow::bail!("YAML parse error on {source_name}: {message}")
            }
            anyhow::bail!(
                "YAML parse error on {source_name}: {message}\n\nUse --debug flag to render out invalid YAML"
            )
        }
        Err(e) => Err(e.into()),
    }
}
