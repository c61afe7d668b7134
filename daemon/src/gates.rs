//! Automatic gates between waves (`spec.strategy.gates`): metric analysis against a
//! Prometheus and webhook calls, both named in the coordinator's `gates` config so that
//! a release file can neither point the coordinator at an arbitrary URL nor carry a
//! token. The orchestrator decides (see `Operation::on_measurement`); this module takes
//! the measurements.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{
    ContextPhase, GateCheckSpec, GateSpec, Measurement, Millis, Operation, OperationPhase, Verdict,
    now_millis,
};
use crate::orchestrator::GateAt;

/// The `gates` section of the coordinator's config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatesConfig {
    /// Prometheus servers an `analysis` may query, by name.
    #[serde(default)]
    pub prometheus: Vec<EndpointConfig>,
    /// Webhooks a `webhook` gate may call, by name.
    #[serde(default)]
    pub webhooks: Vec<EndpointConfig>,
}

/// A Prometheus or a gate webhook.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub name: String,
    /// Prometheus: its base URL (`http://prometheus:9090`); webhook: the URL to POST to.
    pub url: String,
    /// A file holding a bearer token sent with each request.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl GatesConfig {
    /// Checks names and URLs: `(key, reason)` as the rest of the config's checks.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (section, list) in [("prometheus", &self.prometheus), ("webhooks", &self.webhooks)] {
            let mut seen = Vec::new();
            for (i, e) in list.iter().enumerate() {
                let key = format!("gates.{section}[{i}]");
                if e.name.trim().is_empty() {
                    return Err((format!("{key}.name"), "expected a name".into()));
                }
                if seen.contains(&e.name.as_str()) {
                    return Err((format!("{key}.name"), format!("{:?} is named twice", e.name)));
                }
                seen.push(&e.name);
                if reqwest::Url::parse(&e.url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .is_none()
                {
                    return Err((
                        format!("{key}.url"),
                        format!("expected an http:// or https:// URL, got {:?}", e.url),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The plan's copy of a release file's gate (waves 0-based).
pub fn plan_gate(g: &convoy_release::Gate) -> GateSpec {
    GateSpec {
        name: g.name.clone(),
        before: g.before_waves.iter().map(|w| *w as usize - 1).collect(),
        check: match &g.check {
            convoy_release::GateCheck::Analysis(a) => GateCheckSpec::Analysis {
                provider: a.provider.clone(),
                query: a.query.clone(),
                interval: a.interval,
                count: a.count,
                success: a.success.to_string(),
                failure: a.failure.map(|c| c.to_string()),
                failure_limit: a.failure_limit,
                inconclusive_limit: a.inconclusive_limit,
            },
            convoy_release::GateCheck::Webhook(w) => GateCheckSpec::Webhook {
                name: w.name.clone(),
                timeout: w.timeout,
                retries: w.retries,
            },
        },
    }
}

/// What a gate's measurements are taken with: the configured endpoints, their tokens
/// read once at start.
#[derive(Clone)]
pub struct Gates {
    http: reqwest::Client,
    prometheus: BTreeMap<String, Endpoint>,
    webhooks: BTreeMap<String, Endpoint>,
}

#[derive(Clone)]
struct Endpoint {
    url: String,
    token: Option<String>,
}

impl Gates {
    /// Reads the token files; an unreadable one names its key.
    pub fn new(cfg: &GatesConfig) -> Result<Gates, String> {
        let read = |section: &str, list: &[EndpointConfig]| -> Result<BTreeMap<String, Endpoint>, String> {
            let mut out = BTreeMap::new();
            for (i, e) in list.iter().enumerate() {
                let token = match &e.token_file {
                    Some(f) => Some(
                        std::fs::read_to_string(f)
                            .map_err(|err| format!("gates.{section}[{i}].token_file {}: {err}", f.display()))?
                            .trim()
                            .to_string(),
                    ),
                    None => None,
                };
                out.insert(
                    e.name.clone(),
                    Endpoint {
                        url: e.url.clone(),
                        token,
                    },
                );
            }
            Ok(out)
        };
        Ok(Gates {
            http: crate::tls::https_client(Duration::from_secs(30)).map_err(|e| format!("gates: {e}"))?,
            prometheus: read("prometheus", &cfg.prometheus)?,
            webhooks: read("webhooks", &cfg.webhooks)?,
        })
    }

    /// Takes the job's remaining measurements, `interval` apart (counting from the
    /// last one taken before, so a restarted coordinator keeps the cadence), handing
    /// each to `report`. Ends after the gate's count; the caller drops it sooner when
    /// the orchestrator decided.
    pub async fn run(&self, job: GateJob, report: impl Fn(Measurement)) {
        let (count, _, _) = job.gate.limits();
        let mut last = job.last_at;
        for _ in job.taken..count as usize {
            if let (Some(at), GateCheckSpec::Analysis { interval, .. }) = (last, &job.gate.check) {
                let due = at.saturating_add(interval.as_millis() as u64);
                let now = now_millis();
                if due > now {
                    tokio::time::sleep(Duration::from_millis(due - now)).await;
                }
            }
            let m = self.measure(&job).await;
            last = Some(m.at);
            report(m);
        }
    }

    async fn measure(&self, job: &GateJob) -> Measurement {
        let (verdict, detail) = match &job.gate.check {
            GateCheckSpec::Analysis {
                provider,
                query,
                success,
                failure,
                ..
            } => {
                self.analyse(job, provider, query, success, failure.as_deref())
                    .await
            }
            GateCheckSpec::Webhook {
                name,
                timeout,
                retries,
            } => self.call_webhook(job, name, *timeout, *retries).await,
        };
        Measurement {
            at: now_millis(),
            verdict,
            detail,
        }
    }

    /// One measurement: the query per context (once when it names no context fact;
    /// contexts whose query reads the same share one), each value judged.
    async fn analyse(
        &self,
        job: &GateJob,
        provider: &str,
        query: &str,
        success: &str,
        failure: Option<&str>,
    ) -> (Verdict, String) {
        let condition = match convoy_release::Condition::parse(success) {
            Ok(c) => c,
            Err(e) => return (Verdict::Inconclusive, format!("successCondition {e}")),
        };
        let failure = match failure.map(convoy_release::Condition::parse) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => return (Verdict::Inconclusive, format!("failureCondition {e}")),
        };
        let Some(endpoint) = self.prometheus.get(provider) else {
            return (
                Verdict::Inconclusive,
                format!("Prometheus {provider:?} is no longer in the coordinator's config"),
            );
        };
        let mut queries: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for c in &job.contexts {
            queries.entry(c.fill(query, job)).or_default().push(&c.context);
        }
        if queries.is_empty() {
            queries.insert(query.to_string(), Vec::new());
        }
        let mut failed = Vec::new();
        let mut inconclusive = Vec::new();
        let mut passed = Vec::new();
        for (q, contexts) in &queries {
            let place = if queries.len() == 1 {
                String::new()
            } else {
                format!("in {}: ", contexts.join(", "))
            };
            let answer = self.instant_query(endpoint, q).await;
            let (verdict, what) = judge(&answer, &condition, failure.as_ref());
            let line = match (&answer, verdict) {
                (Ok(v), Verdict::Passed) => format!("{place}{}", number(*v)),
                _ => format!("{place}`{q}`{what}"),
            };
            match verdict {
                Verdict::Passed => passed.push(line),
                Verdict::Failed => failed.push(line),
                Verdict::Inconclusive => inconclusive.push(line),
            }
        }
        if !failed.is_empty() {
            (Verdict::Failed, failed.join("; "))
        } else if !inconclusive.is_empty() {
            (Verdict::Inconclusive, inconclusive.join("; "))
        } else {
            (Verdict::Passed, format!("{} ({condition})", passed.join(", ")))
        }
    }

    /// An instant query answering one number: a scalar, or a vector of one series.
    async fn instant_query(&self, endpoint: &Endpoint, query: &str) -> Result<f64, String> {
        let url = format!("{}/api/v1/query", endpoint.url.trim_end_matches('/'));
        let mut request = self
            .http
            .get(&url)
            .query(&[("query", query)])
            .timeout(Duration::from_secs(30));
        if let Some(t) = &endpoint.token {
            request = request.bearer_auth(t);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("Prometheus did not answer: {}", e.without_url()))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("Prometheus answered {status} without JSON: {}", e.without_url()))?;
        if body["status"] != "success" {
            return Err(format!(
                "Prometheus refused the query ({status}): {}",
                body["error"].as_str().unwrap_or("no reason given")
            ));
        }
        let data = &body["data"];
        let value = match data["resultType"].as_str() {
            Some("scalar") => &data["result"][1],
            Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
                Some([one]) => &one["value"][1],
                Some([]) | None => return Err("no series (no data yet, or the labels match nothing)".into()),
                Some(many) => {
                    return Err(format!(
                        "{} series; expected one (aggregate with sum, max or avg)",
                        many.len()
                    ));
                }
            },
            other => {
                return Err(format!(
                    "a {} result; expected a scalar or a vector",
                    other.unwrap_or("missing")
                ));
            }
        };
        value
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| format!("an unreadable sample value {value}"))
    }

    /// POSTs the gate's context to the webhook: 2xx passes, 4xx fails at once (the
    /// webhook said no), timeouts, connection errors and 5xx are retried.
    async fn call_webhook(
        &self,
        job: &GateJob,
        name: &str,
        timeout: Duration,
        retries: u32,
    ) -> (Verdict, String) {
        let Some(endpoint) = self.webhooks.get(name) else {
            return (
                Verdict::Failed,
                format!("webhook {name:?} is no longer in the coordinator's config"),
            );
        };
        let payload = json!({
            "release": job.release,
            "namespace": job.namespace,
            "revision": job.revision,
            "gate": job.gate.name,
            "wave": job.wave + 1,
            "canaryStep": job.step.map(|k| k + 1),
            "contexts": job.contexts.iter().map(|c| &c.context).collect::<Vec<_>>(),
        });
        let mut last = String::new();
        for attempt in 0..=retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(
                    500 * 2u64.saturating_pow(attempt - 1).min(60),
                ))
                .await;
            }
            let mut request = self.http.post(&endpoint.url).json(&payload).timeout(timeout);
            if let Some(t) = &endpoint.token {
                request = request.bearer_auth(t);
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    return (Verdict::Passed, format!("{name} answered {}", r.status()));
                }
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    last = format!("{name} answered {status}: {}", excerpt(&body));
                    if status.is_client_error() {
                        return (Verdict::Failed, last);
                    }
                }
                Err(e) if e.is_timeout() => {
                    last = format!(
                        "{name} did not answer within {}",
                        convoy_release::duration::format_duration(timeout)
                    )
                }
                Err(e) => last = format!("{name} could not be reached: {}", e.without_url()),
            }
        }
        (
            Verdict::Failed,
            format!("{last} (after {} attempt(s))", retries + 1),
        )
    }
}

impl std::fmt::Debug for Gates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gates")
            .field("prometheus", &self.prometheus.keys().collect::<Vec<_>>())
            .field("webhooks", &self.webhooks.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Hands a measurement back: (operation id, which gate, measurement).
pub type Report = Arc<dyn Fn(String, GateAt, Measurement) + Send + Sync>;

enum GateCmd {
    Start(String, Box<GateJob>),
    Stop(String),
}

/// Runs the gate check of each operation that is checking one, as the core asks: one
/// task per operation, started when its `verifying` appears (or reappears after a
/// pause or a restart: it resumes at the next measurement), stopped when it goes.
pub struct GateRunner {
    tx: tokio::sync::mpsc::UnboundedSender<GateCmd>,
    /// Per operation, the gate its task checks.
    running: HashMap<String, GateAt>,
}

impl GateRunner {
    /// Starts the runner's task (within a tokio runtime).
    pub fn spawn(gates: Gates, report: Report) -> GateRunner {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<GateCmd>();
        tokio::spawn(async move {
            let gates = Arc::new(gates);
            let mut tasks: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
            while let Some(cmd) = rx.recv().await {
                match cmd {
                    GateCmd::Start(op_id, job) => {
                        let (gates, report, id) = (gates.clone(), report.clone(), op_id.clone());
                        let task = tokio::spawn(async move {
                            let at = job.at();
                            gates.run(*job, |m| report(id.clone(), at, m)).await;
                        });
                        if let Some(old) = tasks.insert(op_id, task.abort_handle()) {
                            old.abort();
                        }
                    }
                    GateCmd::Stop(op_id) => {
                        if let Some(t) = tasks.remove(&op_id) {
                            t.abort();
                        }
                    }
                }
                tasks.retain(|_, t| !t.is_finished());
            }
        });
        GateRunner {
            tx,
            running: HashMap::new(),
        }
    }

    /// Starts, restarts or stops operation `id`'s gate task to match what it checks
    /// now (`op` absent: it is gone).
    pub fn reconcile(
        &mut self,
        id: &str,
        op: Option<&Operation>,
        namespace: &str,
        registry: &BTreeMap<String, convoy_release::Context>,
    ) {
        let want = op
            .filter(|o| o.phase == OperationPhase::Running)
            .and_then(|o| o.verifying.as_ref().map(|v| (o, v)));
        let have = self.running.get(id).copied();
        let wanted = want.map(|(_, v)| GateAt {
            wave: v.wave,
            gate: v.gate,
            step: v.step,
        });
        if wanted == have {
            return;
        }
        if have.is_some() {
            self.running.remove(id);
            let _ = self.tx.send(GateCmd::Stop(id.to_string()));
        }
        let Some((op, v)) = want else {
            return;
        };
        let Some(gate) = op.plan.gates.get(v.gate) else {
            return;
        };
        // Between waves: the contexts the revision reached and made healthy. At a
        // canary step: the wave's contexts running the canary.
        let reached: Box<dyn Iterator<Item = &String>> = match v.step {
            None => Box::new(
                op.plan.waves[..v.wave.min(op.plan.waves.len())]
                    .iter()
                    .flatten()
                    .filter(|c| {
                        op.contexts
                            .get(*c)
                            .is_some_and(|s| s.phase == ContextPhase::Healthy)
                    }),
            ),
            Some(_) => Box::new(op.plan.waves.get(v.wave).into_iter().flatten().filter(|c| {
                op.contexts
                    .get(*c)
                    .is_some_and(|s| s.canary.is_some() && !s.phase.is_settled())
            })),
        };
        let contexts = reached
            .filter_map(|c| registry.get(c))
            .map(GateContext::of)
            .collect();
        let job = GateJob {
            release: op.release.clone(),
            namespace: namespace.to_string(),
            revision: op.revision,
            wave: v.wave,
            gate_index: v.gate,
            step: v.step,
            gate: gate.clone(),
            contexts,
            taken: v.measurements.len(),
            last_at: v.measurements.last().map(|m| m.at),
        };
        self.running.insert(id.to_string(), job.at());
        let _ = self.tx.send(GateCmd::Start(id.to_string(), Box::new(job)));
    }
}

/// Judges one query's answer: what the verdict is, and how to say it after the query.
fn judge(
    answer: &Result<f64, String>,
    success: &convoy_release::Condition,
    failure: Option<&convoy_release::Condition>,
) -> (Verdict, String) {
    match *answer {
        Err(ref e) => (Verdict::Inconclusive, format!(": {e}")),
        Ok(v) if v.is_nan() => (Verdict::Inconclusive, " = NaN".into()),
        Ok(v) if success.holds(v) => (Verdict::Passed, format!(" = {}", number(v))),
        Ok(v) => match failure {
            Some(f) if f.holds(v) => (
                Verdict::Failed,
                format!(" = {}, meets failureCondition {f}", number(v)),
            ),
            Some(f) => (
                Verdict::Inconclusive,
                format!(" = {}, meets neither {success} nor {f}", number(v)),
            ),
            None => (Verdict::Failed, format!(" = {}, expected {success}", number(v))),
        },
    }
}

/// A number as people write it: `0.05`, `12`.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.4}").trim_end_matches('0').to_string()
    }
}

/// The start of a webhook's answer, on one line.
fn excerpt(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else if line.is_empty() {
        "(empty body)".into()
    } else {
        line
    }
}

/// One gate check to run: what the release, the operation and the registry say.
#[derive(Debug, Clone)]
pub struct GateJob {
    pub release: String,
    pub namespace: String,
    pub revision: u64,
    /// The gated wave, 0-based.
    pub wave: usize,
    /// The gate's index in the plan.
    pub gate_index: usize,
    /// At a step of the wave's canary (0-based), not before the wave.
    pub step: Option<usize>,
    pub gate: GateSpec,
    /// The contexts the revision reached so far (the query runs per context).
    pub contexts: Vec<GateContext>,
    /// Measurements already taken (before a restart), and when the last was.
    pub taken: usize,
    pub last_at: Option<Millis>,
}

impl GateJob {
    /// Which gate this job measures.
    pub fn at(&self) -> GateAt {
        GateAt {
            wave: self.wave,
            gate: self.gate_index,
            step: self.step,
        }
    }
}

/// A context's facts a query may name.
#[derive(Debug, Clone)]
pub struct GateContext {
    pub context: String,
    pub region: String,
    pub env: String,
    pub cloud: String,
    pub cluster: String,
}

impl GateContext {
    pub fn of(c: &convoy_release::Context) -> GateContext {
        GateContext {
            context: c.name.clone(),
            region: c.region.clone(),
            env: c.env.clone(),
            cloud: c.cloud.clone(),
            cluster: c.cluster_name.clone(),
        }
    }

    /// `query` with `{{region}}` and the other facts filled in for this context.
    fn fill(&self, query: &str, job: &GateJob) -> String {
        let mut out = String::with_capacity(query.len());
        let mut rest = query;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                break;
            };
            out.push_str(match after[..end].trim() {
                "context" => &self.context,
                "region" => &self.region,
                "env" => &self.env,
                "cloud" => &self.cloud,
                "cluster" => &self.cluster,
                "release" => &job.release,
                "namespace" => &job.namespace,
                _ => "",
            });
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(query: &str) -> (GateJob, GateContext) {
        let ctx = GateContext {
            context: "east".into(),
            region: "us-east1".into(),
            env: "prod".into(),
            cloud: "gcp".into(),
            cluster: "east-1".into(),
        };
        let job = GateJob {
            release: "web.shop".into(),
            namespace: "shop".into(),
            revision: 3,
            wave: 1,
            gate_index: 0,
            step: None,
            gate: GateSpec {
                name: "g".into(),
                before: vec![1],
                check: GateCheckSpec::Analysis {
                    provider: "p".into(),
                    query: query.into(),
                    interval: Duration::from_secs(1),
                    count: 1,
                    success: "result < 1".into(),
                    failure: None,
                    failure_limit: 0,
                    inconclusive_limit: 0,
                },
            },
            contexts: vec![ctx.clone()],
            taken: 0,
            last_at: None,
        };
        (job, ctx)
    }

    #[test]
    fn queries_name_the_context_facts() {
        let q = "sum(rate(e{region=\"{{region}}\",cluster=\"{{ cluster }}\",ns=\"{{namespace}}\"}[1m])) # {{context}} {{env}} {{cloud}} {{release}}";
        let (job, ctx) = job(q);
        assert_eq!(
            ctx.fill(q, &job),
            "sum(rate(e{region=\"us-east1\",cluster=\"east-1\",ns=\"shop\"}[1m])) # east prod gcp web.shop"
        );
        assert_eq!(ctx.fill("up", &job), "up");
    }

    #[test]
    fn answers_are_judged_by_both_conditions() {
        let ok = convoy_release::Condition::parse("result < 0.05").unwrap();
        let bad = convoy_release::Condition::parse("result >= 0.1").unwrap();
        let j = |a: Result<f64, String>, f| judge(&a, &ok, f);
        assert_eq!(j(Ok(0.01), None), (Verdict::Passed, " = 0.01".into()));
        assert_eq!(
            j(Ok(0.07), None),
            (Verdict::Failed, " = 0.07, expected result < 0.05".into())
        );
        assert_eq!(
            j(Ok(0.07), Some(&bad)),
            (
                Verdict::Inconclusive,
                " = 0.07, meets neither result < 0.05 nor result >= 0.1".into()
            )
        );
        assert_eq!(
            j(Ok(0.2), Some(&bad)),
            (
                Verdict::Failed,
                " = 0.2, meets failureCondition result >= 0.1".into()
            )
        );
        assert_eq!(j(Ok(f64::NAN), None).0, Verdict::Inconclusive);
        assert_eq!(
            j(Err("no series".into()), None),
            (Verdict::Inconclusive, ": no series".into())
        );
    }

    #[test]
    fn numbers_and_excerpts_read_well() {
        assert_eq!(number(12.0), "12");
        assert_eq!(number(0.05), "0.05");
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(excerpt(""), "(empty body)");
        assert_eq!(excerpt("a\n  b"), "a b");
        assert!(excerpt(&"x".repeat(500)).ends_with('…'));
    }

    #[test]
    fn an_unreadable_token_file_names_its_key_and_path() {
        let cfg: GatesConfig = serde_yaml::from_str(
            "webhooks: [{name: w, url: 'http://127.0.0.1:1/x', token_file: /nonexistent/token}]",
        )
        .unwrap();
        let err = Gates::new(&cfg).unwrap_err();
        assert!(
            err.starts_with("gates.webhooks[0].token_file /nonexistent/token: "),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cr3t-token\n").unwrap();
        let cfg = GatesConfig {
            prometheus: vec![EndpointConfig {
                name: "p".into(),
                url: "http://127.0.0.1:1".into(),
                token_file: Some(token),
            }],
            webhooks: Vec::new(),
        };
        let gates = Gates::new(&cfg).unwrap();
        assert_eq!(gates.prometheus["p"].token.as_deref(), Some("s3cr3t-token"));
        assert!(
            !format!("{gates:?} {cfg:?}").contains("s3cr3t"),
            "no token in Debug"
        );
    }

    #[test]
    fn config_refuses_duplicates_and_bad_urls() {
        let cfg = |yaml: &str| serde_yaml::from_str::<GatesConfig>(yaml).unwrap().validate();
        assert!(cfg("prometheus: [{name: p, url: 'http://127.0.0.1:9090'}]").is_ok());
        assert_eq!(
            cfg("prometheus: [{name: p, url: 'http://a'}, {name: p, url: 'http://b'}]")
                .unwrap_err()
                .0,
            "gates.prometheus[1].name"
        );
        let (key, why) = cfg("webhooks: [{name: w, url: 'ftp://a'}]").unwrap_err();
        assert_eq!(key, "gates.webhooks[0].url");
        assert!(why.contains("http:// or https://"), "{why}");
    }
}
