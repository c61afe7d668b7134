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
  convoy history web.shop --limit 5 -o json
  convoy history web.shop --show 7          # what revision 7 deployed: chart, images, values changed
  convoy history web.shop --diff 6 7        # chart, images and values between two revisions";

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
    #[arg(long, default_value_t = 0, value_name = "N", conflicts_with_all = ["show", "diff"])]
    pub limit: u32,
    /// One revision in full: who, why, when, the chart (digest and source), the image of
    /// every workload (and where, when it differs by context), the values that changed
    /// against the previous revision (secrets masked), the outcome in each context.
    #[arg(long, value_name = "N", conflicts_with = "diff")]
    pub show: Option<u64>,
    /// What changed from revision A to revision B: chart, images, values.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub diff: Option<Vec<u64>>,
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
            Some(o) => {
                writeln!(out, "operation: {}", describe_op(o))?;
                if !o.canary.is_empty() {
                    writeln!(out, "canary:    {}", o.canary)?;
                }
                for g in &o.gates {
                    writeln!(out, "gate:      {}", describe_gate(g))?;
                }
            }
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

/// `analysis error-rate before wave 2: MEASURING 1/3, last PASSED: 0.01 (result < 0.05)`.
fn describe_gate(g: &pb::GateStatus) -> String {
    let progress = match g.measurements.last() {
        Some(m) if g.state == "MEASURING" => format!(
            " {}/{}, last {}: {}",
            g.measurements.len(),
            g.measurements_wanted,
            m.verdict,
            m.detail
        ),
        _ => String::new(),
    };
    let place = match g.canary_step {
        0 => format!("before wave {}", g.before_wave),
        k => format!("at canary step {k} in wave {}", g.before_wave),
    };
    format!(
        "{} {} {place}: {}{progress} ({})",
        g.kind, g.name, g.state, g.check
    )
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
    let find = |n: u64| {
        h.revisions.iter().find(|r| r.number == n).ok_or_else(|| {
            let newest = h.revisions.first().map_or(0, |r| r.number);
            crate::exit::CliError::InvalidInput(format!(
                "{}: no revision {n} (revisions 1 to {newest}; `convoy history {}` lists them)",
                a.release, a.release
            ))
        })
    };
    if let Some(n) = a.show {
        let r = find(n)?;
        if fmt == Format::Json {
            return Ok(output::print_json(
                &mut out,
                &json!({"release": a.release, "revision": output::json::revision(r)}),
            )?);
        }
        return Ok(show_revision(&mut out, &a.release, r)?);
    }
    if let Some([from, to]) = a.diff.as_deref() {
        let (before, after) = (find(*from)?, find(*to)?);
        let d = revision_diff(before, after);
        if fmt == Format::Json {
            return Ok(output::print_json(&mut out, &d.json(&a.release))?);
        }
        return Ok(d.write(&mut out, &a.release)?);
    }
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

fn image_where(i: &pb::WorkloadImage) -> String {
    if i.contexts.is_empty() {
        String::new()
    } else {
        format!("  [{}]", i.contexts.join(", "))
    }
}

fn value_text(json: &str) -> String {
    if json.is_empty() {
        "(absent)".into()
    } else {
        json.to_string()
    }
}

fn change_line(context: &str, path: &str, before: &str, after: &str) -> String {
    let at = if context.is_empty() {
        String::new()
    } else {
        format!("[{context}] ")
    };
    format!("  {at}{path}: {} -> {}", value_text(before), value_text(after))
}

/// `convoy history R --show N`.
fn show_revision(out: &mut impl Write, release: &str, r: &pb::Revision) -> std::io::Result<()> {
    let kind = if r.kind == pb::OperationKind::Rollback as i32 {
        format!("rollback to revision {}", r.rollback_to)
    } else {
        op_kind(r.kind).to_lowercase()
    };
    writeln!(
        out,
        "{release} revision {}: {kind}, {}",
        r.number,
        op_phase(r.phase)
    )?;
    writeln!(
        out,
        "submitted {} by {}: {}",
        output::time(r.submitted_at.as_ref()),
        r.submitted_by,
        r.reason
    )?;
    writeln!(out, "chart {} {}", r.chart_name, r.chart_version)?;
    if !r.chart_digest.is_empty() {
        writeln!(out, "  digest {}", r.chart_digest)?;
    }
    if !r.chart_source.is_empty() {
        writeln!(out, "  from {}", r.chart_source)?;
    }
    if !r.chart_ran_healthy.is_empty() {
        let runs: Vec<String> = r
            .chart_ran_healthy
            .iter()
            .map(|d| format!("{} ({} r{})", d.environment, d.release, d.revision))
            .collect();
        writeln!(out, "  ran healthy in {}", runs.join(", "))?;
    }
    writeln!(out, "images:")?;
    if r.images.is_empty() {
        writeln!(out, "  (none recorded)")?;
    }
    for i in &r.images {
        writeln!(
            out,
            "  {} {}: {}{}",
            i.workload,
            i.container,
            i.image,
            image_where(i)
        )?;
    }
    if r.values_json.is_empty() {
        writeln!(
            out,
            "values: not recorded (a revision from before convoy kept them)"
        )?;
    } else if r.values_changed.is_empty() {
        writeln!(out, "values changed against the previous revision: none")?;
    } else {
        writeln!(out, "values changed against the previous revision:")?;
        for c in &r.values_changed {
            writeln!(out, "{}", change_line(&c.context, &c.path, &c.before, &c.after))?;
        }
    }
    if !r.secret_versions.is_empty() {
        writeln!(out, "secrets (versions, never values):")?;
        for s in &r.secret_versions {
            writeln!(
                out,
                "  {} [{}] {}#{} v{}",
                s.secret_id, s.context, s.vault_path, s.vault_key, s.version
            )?;
        }
    }
    if !r.message.is_empty() {
        writeln!(out, "ended: {}", r.message)?;
    }
    writeln!(out, "outcomes:")?;
    for o in &r.outcomes {
        let why = if o.message.is_empty() {
            String::new()
        } else {
            format!(": {}", o.message)
        };
        writeln!(
            out,
            "  {} {} ({}){why}",
            o.context,
            ctx_phase(o.phase),
            output::duration_ms(o.duration_ms)
        )?;
    }
    Ok(())
}

/// What changed between two revisions.
struct RevisionDiff {
    from: u64,
    to: u64,
    chart: Option<(String, String)>,
    /// (workload, container, before, after): each side `image [contexts]`, empty when absent.
    images: Vec<(String, String, String, String)>,
    values: Option<Vec<(String, convoy_release::ValueChange)>>,
}

fn revision_diff(before: &pb::Revision, after: &pb::Revision) -> RevisionDiff {
    let chart_of = |r: &pb::Revision| {
        let mut c = format!("{} {}", r.chart_name, r.chart_version);
        if !r.chart_digest.is_empty() {
            c.push_str(&format!(" ({})", r.chart_digest));
        }
        c
    };
    let chart = (chart_of(before) != chart_of(after)).then(|| (chart_of(before), chart_of(after)));
    let side = |r: &pb::Revision| {
        let mut m: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
        for i in &r.images {
            m.entry((i.workload.clone(), i.container.clone()))
                .or_default()
                .push(format!("{}{}", i.image, image_where(i)));
        }
        m
    };
    let (b, a) = (side(before), side(after));
    let keys: std::collections::BTreeSet<&(String, String)> = b.keys().chain(a.keys()).collect();
    let images = keys
        .into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .map(|k| {
            let text = |m: &std::collections::BTreeMap<(String, String), Vec<String>>| {
                m.get(k).map(|v| v.join("; ")).unwrap_or_default()
            };
            (k.0.clone(), k.1.clone(), text(&b), text(&a))
        })
        .collect();
    let values = (!before.values_json.is_empty() && !after.values_json.is_empty()).then(|| {
        let parse = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
        convoy_release::record_changes(&parse(&before.values_json), &parse(&after.values_json))
    });
    RevisionDiff {
        from: before.number,
        to: after.number,
        chart,
        images,
        values,
    }
}

impl RevisionDiff {
    fn write(&self, out: &mut impl Write, release: &str) -> std::io::Result<()> {
        writeln!(out, "{release}: revision {} -> {}", self.from, self.to)?;
        match &self.chart {
            Some((b, a)) => writeln!(out, "chart: {b} -> {a}")?,
            None => writeln!(out, "chart: unchanged")?,
        }
        if self.images.is_empty() {
            writeln!(out, "images: unchanged")?;
        } else {
            writeln!(out, "images:")?;
            for (w, c, b, a) in &self.images {
                let or_absent = |s: &str| {
                    if s.is_empty() {
                        "(absent)".to_string()
                    } else {
                        s.to_string()
                    }
                };
                writeln!(out, "  {w} {c}: {} -> {}", or_absent(b), or_absent(a))?;
            }
        }
        match &self.values {
            None => writeln!(
                out,
                "values: not recorded for one of them (revisions from before convoy kept them)"
            )?,
            Some(v) if v.is_empty() => writeln!(out, "values: unchanged")?,
            Some(v) => {
                writeln!(out, "values:")?;
                for (ctx, c) in v {
                    let text =
                        |x: &Option<serde_json::Value>| x.as_ref().map(|v| v.to_string()).unwrap_or_default();
                    writeln!(
                        out,
                        "{}",
                        change_line(ctx, &c.path, &text(&c.before), &text(&c.after))
                    )?;
                }
            }
        }
        Ok(())
    }

    fn json(&self, release: &str) -> serde_json::Value {
        json!({
            "release": release,
            "from": self.from,
            "to": self.to,
            "chart": self.chart.as_ref().map(|(b, a)| json!({"before": b, "after": a})),
            "images": self.images.iter().map(|(w, c, b, a)| json!({
                "workload": w, "container": c, "before": b, "after": a,
            })).collect::<Vec<_>>(),
            "values": self.values.as_ref().map(|v| v.iter().map(|(ctx, c)| json!({
                "context": ctx, "path": c.path, "before": c.before, "after": c.after,
            })).collect::<Vec<_>>()),
        })
    }
}
