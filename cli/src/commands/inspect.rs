//! Read-only commands (role viewer): `status`, `history`, `queue`, `clusters`.

use std::io::Write;

use convoy_proto::v1 as pb;
use serde_json::json;

use super::Common;
use crate::exit::Result;
use crate::output::{self, Format, ctx_phase, op_kind, op_phase};

pub const STATUS_EXAMPLES: &str = "\
Examples:
  convoy status web.shop
  convoy status web.shop -o json | jq '.contexts[] | select(.phase != \"HEALTHY\")'";

pub const HISTORY_EXAMPLES: &str = "\
Examples:
  convoy history web.shop
  convoy history web.shop --limit 5 -o json";

pub const QUEUE_EXAMPLES: &str = "\
Examples:
  convoy queue web.shop                 # the running operation first, then the queued ones
  convoy cancel web.shop <OPERATION_ID> --reason \"superseded\"";

pub const CLUSTERS_EXAMPLES: &str = "\
Examples:
  convoy clusters
  convoy clusters --env prod -o json";

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The release, `app.namespace`.
    pub release: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The release, `app.namespace`.
    pub release: String,
    /// At most this many revisions, newest first (0 for all).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub limit: u32,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct QueueArgs {
    /// The release, `app.namespace`.
    pub release: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct ClustersArgs {
    /// Only contexts of this environment (`dev`, `prod`).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

pub async fn status(a: StatusArgs) -> Result<()> {
    let client = a.common.client().await?;
    let mut releases = client.releases.clone();
    let req = pb::GetReleaseRequest {
        release: a.release.clone(),
    };
    let r = client
        .call(&format!("status {}", a.release), releases.get_release(req))
        .await?;
    let mut out = std::io::stdout().lock();
    let fmt = a.common.output.format();
    if fmt == Format::Json {
        return Ok(output::print_json(&mut out, &output::json::release(&r))?);
    }
    if fmt == Format::Table {
        writeln!(
            out,
            "release:   {} (namespace {}, environment {})",
            r.name, r.namespace, r.environment
        )?;
        writeln!(
            out,
            "revisions: latest {}, deployed {}",
            r.latest_revision,
            deployed(r.deployed_revision)
        )?;
        match &r.current_operation {
            Some(o) => writeln!(out, "operation: {}", describe_op(o))?,
            None => writeln!(out, "operation: none running")?,
        }
        writeln!(out, "queued:    {}", r.queued_operations)?;
        writeln!(out)?;
    }
    let rows: Vec<Vec<String>> = r
        .contexts
        .iter()
        .map(|c| {
            vec![
                c.context.clone(),
                c.region.clone(),
                (c.wave + 1).to_string(),
                ctx_phase(c.phase).to_string(),
                c.revision.to_string(),
                format!("{}/{}", c.ready, c.desired),
                if c.agent_connected { "connected" } else { "OFFLINE" }.to_string(),
                c.message.clone(),
            ]
        })
        .collect();
    let header = [
        "CONTEXT", "REGION", "WAVE", "PHASE", "REVISION", "READY", "AGENT", "MESSAGE",
    ];
    Ok(output::rows(&mut out, fmt, &header, &rows)?)
}

fn deployed(n: u64) -> String {
    if n == 0 { "none".into() } else { n.to_string() }
}

/// `deploy to revision 2: RUNNING (wave 1/2) by alice: wave 1 of 2 [op-...]`.
fn describe_op(o: &pb::Operation) -> String {
    let waves = if o.waves > 1 {
        format!(" (wave {}/{})", o.current_wave + 1, o.waves)
    } else {
        String::new()
    };
    let by = if o.requested_by.is_empty() {
        String::new()
    } else {
        format!(" by {}", o.requested_by)
    };
    let msg = if o.message.is_empty() {
        String::new()
    } else {
        format!(": {}", o.message)
    };
    format!(
        "{} to revision {}: {}{waves}{by}{msg} [{}]",
        op_kind(o.kind).to_lowercase(),
        o.revision,
        op_phase(o.phase),
        o.id
    )
}

pub async fn history(a: HistoryArgs) -> Result<()> {
    let client = a.common.client().await?;
    let mut releases = client.releases.clone();
    let req = pb::GetHistoryRequest {
        release: a.release.clone(),
        limit: a.limit,
    };
    let h = client
        .call(&format!("history {}", a.release), releases.get_history(req))
        .await?;
    let mut out = std::io::stdout().lock();
    let fmt = a.common.output.format();
    if fmt == Format::Json {
        let doc = json!({
            "release": a.release,
            "revisions": h.revisions.iter().map(output::json::revision).collect::<Vec<_>>(),
        });
        return Ok(output::print_json(&mut out, &doc)?);
    }
    let rows: Vec<Vec<String>> = h
        .revisions
        .iter()
        .map(|r| {
            let kind = if r.kind == pb::OperationKind::Rollback as i32 {
                format!("rollback to {}", r.rollback_to)
            } else {
                op_kind(r.kind).to_lowercase()
            };
            let outcomes: Vec<String> = r
                .outcomes
                .iter()
                .map(|o| {
                    format!(
                        "{}={}({})",
                        o.context,
                        ctx_phase(o.phase),
                        output::duration_ms(o.duration_ms)
                    )
                })
                .collect();
            vec![
                r.number.to_string(),
                kind,
                op_phase(r.phase).to_string(),
                output::time(r.submitted_at.as_ref()),
                r.submitted_by.clone(),
                format!("{} {}", r.chart_name, r.chart_version),
                r.values_digest.chars().take(12).collect(),
                outcomes.join(" "),
                r.reason.clone(),
            ]
        })
        .collect();
    let header = [
        "REVISION",
        "KIND",
        "PHASE",
        "SUBMITTED",
        "BY",
        "CHART",
        "VALUES",
        "OUTCOMES",
        "REASON",
    ];
    Ok(output::rows(&mut out, fmt, &header, &rows)?)
}

pub async fn queue(a: QueueArgs) -> Result<()> {
    let client = a.common.client().await?;
    let mut releases = client.releases.clone();
    let req = pb::ListQueueRequest {
        release: a.release.clone(),
    };
    let q = client
        .call(&format!("queue {}", a.release), releases.list_queue(req))
        .await?;
    let mut out = std::io::stdout().lock();
    let fmt = a.common.output.format();
    if fmt == Format::Json {
        let doc = json!({
            "release": a.release,
            "operations": q.operations.iter().map(output::json::operation).collect::<Vec<_>>(),
        });
        return Ok(output::print_json(&mut out, &doc)?);
    }
    if q.operations.is_empty() && fmt == Format::Table {
        writeln!(out, "{}: nothing running or queued", a.release)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = q
        .operations
        .iter()
        .map(|o| {
            vec![
                o.id.clone(),
                op_kind(o.kind).to_lowercase(),
                o.revision.to_string(),
                op_phase(o.phase).to_string(),
                o.requested_by.clone(),
                output::time(o.created_at.as_ref()),
                o.reason.clone(),
            ]
        })
        .collect();
    let header = [
        "OPERATION",
        "KIND",
        "REVISION",
        "PHASE",
        "BY",
        "CREATED",
        "REASON",
    ];
    Ok(output::rows(&mut out, fmt, &header, &rows)?)
}

pub async fn clusters(a: ClustersArgs) -> Result<()> {
    let client = a.common.client().await?;
    let mut clusters = client.clusters.clone();
    let req = pb::ListClustersRequest {
        environment: a.env.clone().unwrap_or_default(),
        labels: Default::default(),
    };
    let list = client.call("clusters", clusters.list_clusters(req)).await?;
    let mut out = std::io::stdout().lock();
    let fmt = a.common.output.format();
    if fmt == Format::Json {
        let doc = json!({ "clusters": list.clusters.iter().map(output::json::cluster).collect::<Vec<_>>() });
        return Ok(output::print_json(&mut out, &doc)?);
    }
    let rows: Vec<Vec<String>> = list
        .clusters
        .iter()
        .map(|c| {
            let (agent, version, backend, seen) = match &c.agent {
                Some(a) => (
                    if a.connected { "connected" } else { "disconnected" },
                    a.version.clone(),
                    a.backend.clone(),
                    output::time(a.last_seen.as_ref()),
                ),
                None => ("never connected", String::new(), String::new(), String::new()),
            };
            vec![
                c.context.clone(),
                c.region.clone(),
                c.environment.clone(),
                c.cloud.clone(),
                c.cluster_name.clone(),
                agent.to_string(),
                version,
                backend,
                seen,
            ]
        })
        .collect();
    let header = [
        "CONTEXT",
        "REGION",
        "ENV",
        "CLOUD",
        "CLUSTER",
        "AGENT",
        "VERSION",
        "BACKEND",
        "LAST SEEN",
    ];
    Ok(output::rows(&mut out, fmt, &header, &rows)?)
}
