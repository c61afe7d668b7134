//! The connection to the coordinator: address, token, TLS and timeouts, shared by every
//! online command (flags, or `CONVOY_SERVER` / `CONVOY_TOKEN` so Jenkins credentials stay
//! out of command lines).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use convoy_proto::v1::cluster_service_client::ClusterServiceClient;
use convoy_proto::v1::release_service_client::ReleaseServiceClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::exit::{CliError, Result};

/// Where the coordinator is and how to prove who we are.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectArgs {
    /// The coordinator's gRPC address (`http://host:port`, or `https://...` for TLS).
    #[arg(
        long,
        env = "CONVOY_SERVER",
        default_value = "http://127.0.0.1:7443",
        value_name = "URL"
    )]
    pub server: String,
    /// API token, sent as `authorization: Bearer <token>`. Prefer CONVOY_TOKEN so it stays
    /// out of shell history and process lists.
    #[arg(long, env = "CONVOY_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<Token>,
    /// PEM file of the CA that signed the coordinator's certificate (needed for https).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mTLS (with --client-key).
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// The name to verify the coordinator's certificate against, when it differs from
    /// the host in --server (e.g. connecting by IP).
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Give up connecting after this many seconds.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub connect_timeout: u64,
    /// Give up on a request (not a watch) after this many seconds.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub timeout: u64,
}

/// An API token. Its `Debug` never shows the value, so it cannot leak through
/// `{:?}` of the parsed arguments or an error.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl FromStr for Token {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err("the token is empty".into());
        }
        Ok(Token(t.to_string()))
    }
}

/// Adds the bearer token to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut req: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, Bearer>;

/// Connected API clients plus the per-request deadline.
pub struct Client {
    /// The release API.
    pub releases: ReleaseServiceClient<Svc>,
    /// The cluster (context registry) API.
    pub clusters: ClusterServiceClient<Svc>,
    timeout: Duration,
    server: String,
}

impl Client {
    /// Connects now, so an unreachable coordinator is reported (exit 5) before anything
    /// else happens.
    pub async fn connect(args: &ConnectArgs) -> Result<Self> {
        let bearer = match &args.token {
            Some(Token(t)) => Some(format!("Bearer {t}").parse().map_err(|_| {
                CliError::InvalidInput("the token contains characters not allowed in a header".into())
            })?),
            None => None,
        };
        let endpoint = endpoint(args)?;
        let channel = endpoint.connect().await.map_err(|e| {
            CliError::Unreachable(format!(
                "cannot reach the coordinator at {}: {}",
                args.server,
                chain(&e)
            ))
        })?;
        let bearer = Bearer(bearer);
        Ok(Client {
            releases: ReleaseServiceClient::with_interceptor(channel.clone(), bearer.clone())
                .max_decoding_message_size(64 << 20),
            clusters: ClusterServiceClient::with_interceptor(channel, bearer),
            timeout: Duration::from_secs(args.timeout),
            server: args.server.clone(),
        })
    }

    /// Runs one unary call with the request deadline; `what` names it in errors.
    pub async fn call<T, F>(&self, what: &str, fut: F) -> Result<T>
    where
        F: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(CliError::from_status(what, &s)),
            Err(_) => Err(CliError::Unreachable(format!(
                "{what}: no answer from {} within {}s (raise --timeout)",
                self.server,
                self.timeout.as_secs()
            ))),
        }
    }
}

fn endpoint(args: &ConnectArgs) -> Result<Endpoint> {
    let bad = |m: String| CliError::InvalidInput(m);
    let mut ep = Endpoint::from_str(&args.server)
        .map_err(|e| bad(format!("--server `{}` is not a valid URL: {e}", args.server)))?
        .connect_timeout(Duration::from_secs(args.connect_timeout))
        .tcp_nodelay(true);
    let tls_asked = args.ca_file.is_some() || args.client_cert.is_some() || args.tls_server_name.is_some();
    if args.server.starts_with("https://") || tls_asked {
        if !args.server.starts_with("https://") {
            return Err(bad(format!(
                "TLS options were given but --server `{}` is not https://",
                args.server
            )));
        }
        let Some(ca) = &args.ca_file else {
            return Err(bad(
                "https needs --ca-file (the CA that signed the coordinator's certificate)".into(),
            ));
        };
        let read =
            |p: &PathBuf| std::fs::read(p).map_err(|e| bad(format!("cannot read {}: {e}", p.display())));
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(name) = &args.tls_server_name {
            tls = tls.domain_name(name.clone());
        }
        ep = ep
            .tls_config(tls)
            .map_err(|e| bad(format!("TLS configuration: {}", chain(&e))))?;
    }
    Ok(ep)
}

/// An error and its sources on one line (`transport error: tcp connect error: Connection
/// refused`), since tonic's top-level message alone says little.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_debug_is_redacted() {
        let t: Token = "s3cr3t-value".parse().unwrap();
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }

    #[test]
    fn empty_token_is_refused() {
        assert!(" ".parse::<Token>().is_err());
    }
}
