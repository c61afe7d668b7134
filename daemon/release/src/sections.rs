//! Readers for the sections of `spec` with a fixed shape: scaling, secrets, strategy,
//! health and options.

use std::time::Duration;

use crate::de::{Reader, index};
use crate::model::*;
use crate::parse::read_names;
use crate::yaml::{Node, Scalar};

const SCALING: &[&str] = &["context", "replicas"];
const REPLICAS: &[&str] = &["name", "count"];
const SECRET: &[&str] = &["secret_id", "contexts"];
const SECRET_SOURCE: &[&str] = &["name", "vaultPath", "vaultKey"];
const STRATEGY: &[&str] = &[
    "waves",
    "canary",
    "maxConcurrency",
    "maxFailures",
    "onFailure",
    "soak",
    "offlineAgent",
    "approval",
    "gates",
    "inCluster",
];
const IN_CLUSTER: &[&str] = &["canary", "blueGreen"];
const CANARY: &[&str] = &["steps"];
const BLUE_GREEN: &[&str] = &["previewService", "keepPreviousFor", "steps"];
/// How long the previous slot stays up after a blue/green switch by default (README).
pub const DEFAULT_KEEP_PREVIOUS_FOR: Duration = Duration::from_secs(600);
const CANARY_STEP: &[&str] = &["setWeight", "pause", "approval", "gate"];
const GATE: &[&str] = &["name", "beforeWaves", "analysis", "webhook"];
const ANALYSIS: &[&str] = &[
    "provider",
    "query",
    "interval",
    "count",
    "successCondition",
    "failureCondition",
    "failureLimit",
    "inconclusiveLimit",
];
const WEBHOOK_GATE: &[&str] = &["name", "timeout", "retries"];
/// Defaults of a gate's analysis and webhook, also stated in README.md.
pub const DEFAULT_ANALYSIS_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_WEBHOOK_RETRIES: u32 = 2;
const OFFLINE_AGENT: &[&str] = &["deadline"];
const APPROVAL: &[&str] = &["beforeWaves", "deadline"];
/// How long an approval gate waits by default.
pub const DEFAULT_APPROVAL_DEADLINE: Duration = Duration::from_secs(3600);
const HEALTH: &[&str] = &["progressDeadline", "minReadyWindow"];
const OPTIONS: &[&str] = &["forceRoll", "adopt", "forceConflicts", "allowMassDeletion"];

/// Defaults, also stated in README.md.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
pub const DEFAULT_MIN_READY_WINDOW: Duration = Duration::from_secs(30);
pub const DEFAULT_OFFLINE_AGENT_DEADLINE: Duration = Duration::from_secs(300);
/// Upper bound on a replica count: a typo guard (`count: 20000` meant 20).
pub const MAX_REPLICAS: u32 = 10_000;

/// Reads each item of a list with `read`, keeping going after a bad item.
pub(crate) fn read_list<T>(
    r: &mut Reader,
    node: &Node,
    path: &str,
    what: &str,
    read: fn(&mut Reader, &Node, &str) -> Option<T>,
) -> Option<Vec<T>> {
    let items = r.seq(node, path, what)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match read(r, item, &index(path, i)) {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

pub(crate) fn read_scaling(r: &mut Reader, node: &Node, path: &str) -> Option<Scaling> {
    let f = r.fields(node, path, SCALING)?;
    let context = f
        .required(r, "context", "a target context name")
        .and_then(|c| r.string(c, &f.at("context"), "a target context name"));
    let replicas = f
        .required(r, "replicas", "a list of `{name, count}`")
        .and_then(|n| read_list(r, n, &f.at("replicas"), "`{name, count}` entries", read_replicas));
    Some(Scaling {
        context: context?,
        pos: node.pos,
        replicas: replicas?,
    })
}

fn read_replicas(r: &mut Reader, node: &Node, path: &str) -> Option<Replicas> {
    let f = r.fields(node, path, REPLICAS)?;
    let name = f
        .required(r, "name", "the name of a Deployment or StatefulSet in the chart")
        .and_then(|n| r.string(n, &f.at("name"), "the name of a Deployment or StatefulSet"));
    let count = f
        .required(r, "count", "a replica count")
        .and_then(|n| r.count(n, &f.at("count"), 0, MAX_REPLICAS));
    Some(Replicas {
        name: name?,
        count: count?,
        pos: node.pos,
    })
}

pub(crate) fn read_secret(r: &mut Reader, node: &Node, path: &str) -> Option<SecretSpec> {
    let f = r.fields(node, path, SECRET)?;
    let id_node = f.required(
        r,
        "secret_id",
        "the key the chart reads as `.Values.secrets.<secret_id>`",
    );
    let secret_id = id_node.and_then(|n| {
        let id = r.string(n, &f.at("secret_id"), "a secret id")?;
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            r.error(
                n.pos,
                &f.at("secret_id"),
                format!("`{}` must hold only letters, digits, `-` and `_` (it becomes a key under .Values.secrets)", crate::de::truncate(&id, 60)),
            );
            return None;
        }
        Some(id)
    });
    let sources = f
        .required(r, "contexts", "a list of `{name, vaultPath, vaultKey}`")
        .and_then(|n| {
            read_list(
                r,
                n,
                &f.at("contexts"),
                "`{name, vaultPath, vaultKey}` entries",
                read_secret_source,
            )
        });
    if let (Some(s), Some(n)) = (&sources, f.get("contexts"))
        && s.is_empty()
    {
        r.error(
            n.pos,
            &f.at("contexts"),
            "expected at least one entry (a `default` one covers every context)",
        );
    }
    Some(SecretSpec {
        secret_id: secret_id?,
        pos: node.pos,
        sources: sources?,
    })
}

fn read_secret_source(r: &mut Reader, node: &Node, path: &str) -> Option<SecretSource> {
    let f = r.fields(node, path, SECRET_SOURCE)?;
    let context = f
        .required(r, "name", "a context name or `default`")
        .and_then(|n| r.string(n, &f.at("name"), "a context name or `default`"));
    let vault_path = f
        .required(r, "vaultPath", "a Vault secret path such as `/kv/dev/ns1/app1`")
        .and_then(|n| r.string(n, &f.at("vaultPath"), "a Vault secret path"));
    let vault_key = f
        .required(r, "vaultKey", "the key inside the Vault secret")
        .and_then(|n| r.string(n, &f.at("vaultKey"), "a key inside the Vault secret"));
    Some(SecretSource {
        context: context?,
        vault_path: vault_path?,
        vault_key: vault_key?,
        pos: node.pos,
    })
}

pub(crate) fn default_health() -> Health {
    Health {
        progress_deadline: DEFAULT_PROGRESS_DEADLINE,
        min_ready_window: DEFAULT_MIN_READY_WINDOW,
    }
}

pub(crate) fn default_strategy() -> Strategy {
    Strategy {
        order: Order::AllAtOnce,
        max_concurrency: None,
        max_failures: MaxFailures::Count(0),
        max_failures_pos: None,
        on_failure: OnFailure::Rollback,
        soak: Duration::ZERO,
        offline_agent_deadline: DEFAULT_OFFLINE_AGENT_DEADLINE,
        approval: None,
        gates: Vec::new(),
        in_cluster: None,
    }
}

pub(crate) fn read_strategy(r: &mut Reader, node: &Node) -> Option<Strategy> {
    let f = r.fields(node, "spec.strategy", STRATEGY)?;
    let mut s = default_strategy();
    let mut ok = true;
    match (f.optional("waves"), f.optional("canary")) {
        (Some(_), Some(c)) => {
            r.error(
                c.pos,
                "spec.strategy.canary",
                "give either `waves` or `canary`, not both",
            );
            ok = false;
        }
        (Some(w), None) => {
            let waves = r.seq(w, "spec.strategy.waves", "waves (each a list of context names)");
            let mut out = Vec::new();
            for (i, wave) in waves.unwrap_or_default().iter().enumerate() {
                match read_names(r, wave, &index("spec.strategy.waves", i), "context names") {
                    Some(names) if names.is_empty() => {
                        r.error(
                            wave.pos,
                            &index("spec.strategy.waves", i),
                            "a wave needs at least one context",
                        );
                        ok = false;
                    }
                    Some(names) => out.push(names),
                    None => ok = false,
                }
            }
            ok &= waves.is_some();
            s.order = Order::Waves(out);
        }
        (None, Some(c)) => {
            // One context or a list of them.
            let canary = if c.as_seq().is_some() {
                read_names(r, c, "spec.strategy.canary", "context names")
            } else {
                r.string(c, "spec.strategy.canary", "a context name or a list of them")
                    .map(|value| vec![Spanned { value, pos: c.pos }])
            };
            match canary {
                Some(c2) if c2.is_empty() => {
                    r.error(
                        c.pos,
                        "spec.strategy.canary",
                        "expected at least one canary context",
                    );
                    ok = false;
                }
                Some(c2) => s.order = Order::Canary(c2),
                None => ok = false,
            }
        }
        (None, None) => {}
    }
    if let Some(n) = f.optional("maxConcurrency") {
        s.max_concurrency = r.count(n, "spec.strategy.maxConcurrency", 1, 10_000);
        ok &= s.max_concurrency.is_some();
    }
    if let Some(n) = f.optional("maxFailures") {
        match read_max_failures(r, n) {
            Some(m) => {
                s.max_failures = m;
                s.max_failures_pos = Some(n.pos);
            }
            None => ok = false,
        }
    }
    if let Some(n) = f.optional("onFailure") {
        match r
            .choice(n, "spec.strategy.onFailure", &["rollback", "pause", "continue"])
            .as_deref()
        {
            Some("rollback") => s.on_failure = OnFailure::Rollback,
            Some("pause") => s.on_failure = OnFailure::Pause,
            Some("continue") => s.on_failure = OnFailure::Continue,
            _ => ok = false,
        }
    }
    if let Some(n) = f.optional("soak") {
        match r.duration(n, "spec.strategy.soak") {
            Some(d) => s.soak = d,
            None => ok = false,
        }
    }
    if let Some(n) = f.optional("offlineAgent") {
        if let Some(o) = r.fields(n, "spec.strategy.offlineAgent", OFFLINE_AGENT) {
            if let Some(d) = o.optional("deadline") {
                match r.duration(d, "spec.strategy.offlineAgent.deadline") {
                    Some(d) => s.offline_agent_deadline = d,
                    None => ok = false,
                }
            }
        } else {
            ok = false;
        }
    }
    if let Some(n) = f.optional("approval") {
        match read_approval(r, n) {
            Some(a) => s.approval = Some(a),
            None => ok = false,
        }
    }
    if let Some(n) = f.optional("gates") {
        match read_list(r, n, "spec.strategy.gates", "a list of gates", read_gate) {
            Some(g) => s.gates = g,
            None => ok = false,
        }
    }
    if let Some(n) = f.optional("inCluster") {
        match read_in_cluster(r, n) {
            Some(c) => s.in_cluster = Some(c),
            None => ok = false,
        }
    }
    ok.then_some(s)
}

/// `spec.strategy.inCluster: {canary: {steps: [...]}}`.
fn read_in_cluster(r: &mut Reader, node: &Node) -> Option<InCluster> {
    let path = "spec.strategy.inCluster";
    let f = r.fields(node, path, IN_CLUSTER)?;
    let c = match (f.optional("canary"), f.optional("blueGreen")) {
        (Some(c), None) => c,
        (None, Some(b)) => return read_blue_green(r, b),
        (Some(_), Some(b)) => {
            r.error(b.pos, path, "give either `canary` or `blueGreen`, not both");
            return None;
        }
        (None, None) => {
            r.error(
                node.pos,
                path,
                "expected `canary: {steps: [...]}` or `blueGreen: {previewService, keepPreviousFor, steps}`",
            );
            return None;
        }
    };
    let cf = r.fields(c, "spec.strategy.inCluster.canary", CANARY)?;
    let steps_path = "spec.strategy.inCluster.canary.steps";
    let list = cf.required(
        r,
        "steps",
        "a list of steps such as `[{setWeight: 10}, {pause: 2m}, {gate: error-rate}]`",
    )?;
    let steps = read_list(r, list, steps_path, "steps", read_canary_step)?;
    if !matches!(steps.first(), Some(CanaryStep::SetWeight(_))) {
        r.error(
            list.pos,
            steps_path,
            "expected a `setWeight` first step: it starts the canary the other steps watch",
        );
        return None;
    }
    Some(InCluster::Canary(CanaryStrategy { steps, pos: c.pos }))
}

/// `spec.strategy.inCluster.blueGreen: {previewService, keepPreviousFor, steps}`.
fn read_blue_green(r: &mut Reader, node: &Node) -> Option<InCluster> {
    let path = "spec.strategy.inCluster.blueGreen";
    // `blueGreen: {}` is a blue/green with the defaults.
    let f = r.fields(node, path, BLUE_GREEN)?;
    let mut ok = true;
    let mut b = BlueGreenStrategy {
        preview_service: false,
        keep_previous_for: DEFAULT_KEEP_PREVIOUS_FOR,
        steps: Vec::new(),
        pos: node.pos,
    };
    if let Some(n) = f.optional("previewService") {
        match r.bool(n, &f.at("previewService")) {
            Some(v) => b.preview_service = v,
            None => ok = false,
        }
    }
    if let Some(n) = f.optional("keepPreviousFor") {
        match r.duration(n, &f.at("keepPreviousFor")) {
            Some(d) => b.keep_previous_for = d,
            None => ok = false,
        }
    }
    if let Some(n) = f.optional("steps") {
        let steps_path = f.at("steps");
        match read_list(r, n, &steps_path, "steps", read_canary_step) {
            Some(steps) => {
                if let Some(i) = steps.iter().position(|s| matches!(s, CanaryStep::SetWeight(_))) {
                    r.error(
                        n.pos,
                        &index(&steps_path, i),
                        "a blue/green has no weights: the new slot takes all the traffic at the switch; expected `pause`, `approval` or `gate` steps",
                    );
                    ok = false;
                }
                b.steps = steps;
            }
            None => ok = false,
        }
    }
    ok.then_some(InCluster::BlueGreen(b))
}

/// One canary step: a map with exactly one of `setWeight`, `pause`, `approval`, `gate`.
fn read_canary_step(r: &mut Reader, node: &Node, path: &str) -> Option<CanaryStep> {
    let before = r.diags.len();
    let f = r.fields(node, path, CANARY_STEP)?;
    if r.diags.len() > before {
        // An unknown field, reported: saying what a step may be again adds nothing.
        return None;
    }
    let given: Vec<&str> = CANARY_STEP
        .iter()
        .copied()
        .filter(|k| f.optional(k).is_some() || (*k == "approval" && f.get(k).is_some()))
        .collect();
    let [kind] = given.as_slice() else {
        r.error(
            node.pos,
            path,
            if given.is_empty() {
                "expected one of `setWeight: 10`, `pause: 2m`, `approval: {}`, `gate: NAME`".to_string()
            } else {
                format!(
                    "a step does one thing, found {}: write one step each",
                    given.join(" and ")
                )
            },
        );
        return None;
    };
    let at = f.at(kind);
    match *kind {
        "setWeight" => {
            let n = f.optional(kind)?;
            r.count(n, &at, 1, 99).map(CanaryStep::SetWeight)
        }
        "pause" => {
            let n = f.optional(kind)?;
            let d = r.duration(n, &at)?;
            if d.is_zero() {
                r.error(
                    n.pos,
                    &at,
                    "expected a duration above zero (`approval: {}` waits for an operator)",
                );
                return None;
            }
            Some(CanaryStep::Pause(d))
        }
        "approval" => {
            let Some(n) = f.optional(kind) else {
                return Some(CanaryStep::Approval(None));
            };
            let a = r.fields(n, &at, &["deadline"])?;
            match a.optional("deadline") {
                None => Some(CanaryStep::Approval(None)),
                Some(d) => {
                    let path = a.at("deadline");
                    let d = r.duration(d, &path)?;
                    if d.is_zero() {
                        r.error(n.pos, &path, "expected a duration above zero, such as `30m`");
                        return None;
                    }
                    Some(CanaryStep::Approval(Some(d)))
                }
            }
        }
        _ => {
            let n = f.optional(kind)?;
            let name = r.string(n, &at, "the name of a gate in `spec.strategy.gates`")?;
            Some(CanaryStep::Gate { name, pos: n.pos })
        }
    }
}

/// Reads `beforeWaves` (at `path`): wave numbers from 2, each once, at least one; sorted.
fn read_before_waves(r: &mut Reader, waves: &Node, path: &str, what: &str) -> Option<Vec<u32>> {
    let mut before_waves = Vec::new();
    let mut ok = true;
    for (i, w) in r.seq(waves, path, "wave numbers (2 and up)")?.iter().enumerate() {
        match r.count(w, &index(path, i), 2, 10_000) {
            Some(n) if before_waves.contains(&n) => {
                r.error(w.pos, &index(path, i), format!("wave {n} is listed twice"));
                ok = false;
            }
            Some(n) => before_waves.push(n),
            None => ok = false,
        }
    }
    if before_waves.is_empty() && ok {
        r.error(
            waves.pos,
            path,
            format!("expected at least one wave number (2 and up; the first wave starts with the submit, before any {what})"),
        );
        ok = false;
    }
    before_waves.sort_unstable();
    ok.then_some(before_waves)
}

/// `spec.strategy.gates[i]: {name, beforeWaves, analysis: {...} | webhook: {...}}`.
fn read_gate(r: &mut Reader, node: &Node, path: &str) -> Option<Gate> {
    let f = r.fields(node, path, GATE)?;
    let name = f
        .required(r, "name", "a name for the gate, such as `error-rate`")
        .and_then(|n| r.string(n, &f.at("name"), "a name for the gate"));
    // Optional: a gate may be named only by canary steps (checked with the steps).
    let before_waves = match f.optional("beforeWaves") {
        Some(n) => read_before_waves(r, n, &f.at("beforeWaves"), "gate"),
        None => Some(Vec::new()),
    };
    let check = match (f.optional("analysis"), f.optional("webhook")) {
        (Some(a), None) => read_analysis(r, a, &f.at("analysis")).map(GateCheck::Analysis),
        (None, Some(w)) => read_webhook_gate(r, w, &f.at("webhook")).map(GateCheck::Webhook),
        (Some(_), Some(w)) => {
            r.error(
                w.pos,
                path,
                "a gate has either `analysis` or `webhook`, not both: write two gates",
            );
            None
        }
        (None, None) => {
            r.error(
                node.pos,
                path,
                "expected `analysis: {provider, query, successCondition, ...}` or `webhook: {name, ...}`",
            );
            None
        }
    };
    Some(Gate {
        name: name?,
        before_waves: before_waves?,
        check: check?,
        pos: node.pos,
    })
}

fn read_analysis(r: &mut Reader, node: &Node, path: &str) -> Option<Analysis> {
    let f = r.fields(node, path, ANALYSIS)?;
    let mut ok = true;
    let provider = f
        .required(
            r,
            "provider",
            "the name of a Prometheus in the coordinator's `gates.prometheus`",
        )
        .and_then(|n| r.string(n, &f.at("provider"), "a provider name"));
    let query = f
        .required(r, "query", "a PromQL query answering one number, such as `sum(rate(errors_total{region=\"{{region}}\"}[5m]))`")
        .and_then(|n| {
            let q = r.string(n, &f.at("query"), "a PromQL query")?;
            match query_placeholders(&q) {
                Ok(names) => {
                    for name in names {
                        if !GATE_QUERY_FACTS.contains(&name) {
                            r.error(
                                n.pos,
                                &f.at("query"),
                                format!(
                                    "unknown placeholder {{{{{name}}}}}; expected one of {}",
                                    GATE_QUERY_FACTS
                                        .iter()
                                        .map(|f| format!("{{{{{f}}}}}"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            );
                            return None;
                        }
                    }
                    Some(q)
                }
                Err(e) => {
                    r.error(n.pos, &f.at("query"), e);
                    None
                }
            }
        });
    let success = f
        .required(r, "successCondition", "a condition such as `result < 0.05`")
        .and_then(|n| {
            let text = r.string(
                n,
                &f.at("successCondition"),
                "a condition such as `result < 0.05`",
            )?;
            Condition::parse(&text)
                .map_err(|e| r.error(n.pos, &f.at("successCondition"), e))
                .ok()
        });
    let mut failure = None;
    if let Some(n) = f.optional("failureCondition") {
        match r
            .string(
                n,
                &f.at("failureCondition"),
                "a condition such as `result >= 0.1`",
            )
            .map(|text| Condition::parse(&text))
        {
            Some(Ok(c)) => failure = Some(c),
            Some(Err(e)) => {
                r.error(n.pos, &f.at("failureCondition"), e);
                ok = false;
            }
            None => ok = false,
        }
    }
    let mut interval = DEFAULT_ANALYSIS_INTERVAL;
    if let Some(n) = f.optional("interval") {
        match r.duration(n, &f.at("interval")) {
            Some(d) if !d.is_zero() => interval = d,
            Some(_) => {
                r.error(
                    n.pos,
                    &f.at("interval"),
                    "expected a duration above zero, such as `30s`",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    let mut count_of = |name: &str, default: u32, min: u32| match f.optional(name) {
        Some(n) => {
            let v = r.count(n, &f.at(name), min, 1_000);
            ok &= v.is_some();
            v.unwrap_or(default)
        }
        None => default,
    };
    let count = count_of("count", 1, 1);
    let failure_limit = count_of("failureLimit", 0, 0);
    let inconclusive_limit = count_of("inconclusiveLimit", 0, 0);
    let a = Analysis {
        provider: provider?,
        query: query?,
        interval,
        count,
        success: success?,
        failure,
        failure_limit,
        inconclusive_limit,
    };
    ok.then_some(a)
}

fn read_webhook_gate(r: &mut Reader, node: &Node, path: &str) -> Option<WebhookGate> {
    let f = r.fields(node, path, WEBHOOK_GATE)?;
    let mut ok = true;
    let name = f
        .required(
            r,
            "name",
            "the name of a webhook in the coordinator's `gates.webhooks`",
        )
        .and_then(|n| r.string(n, &f.at("name"), "a webhook name"));
    let mut timeout = DEFAULT_WEBHOOK_TIMEOUT;
    if let Some(n) = f.optional("timeout") {
        match r.duration(n, &f.at("timeout")) {
            Some(d) if !d.is_zero() => timeout = d,
            Some(_) => {
                r.error(
                    n.pos,
                    &f.at("timeout"),
                    "expected a duration above zero, such as `10s`",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    let mut retries = DEFAULT_WEBHOOK_RETRIES;
    if let Some(n) = f.optional("retries") {
        match r.count(n, &f.at("retries"), 0, 100) {
            Some(v) => retries = v,
            None => ok = false,
        }
    }
    let w = WebhookGate {
        name: name?,
        timeout,
        retries,
    };
    ok.then_some(w)
}

/// `spec.strategy.approval: {beforeWaves: [2, 3], deadline: 1h}`.
fn read_approval(r: &mut Reader, node: &Node) -> Option<Approval> {
    const PATH: &str = "spec.strategy.approval";
    let f = r.fields(node, PATH, APPROVAL)?;
    let before_waves = f
        .required(
            r,
            "beforeWaves",
            "the waves that wait for an approval, such as `[2]`",
        )
        .and_then(|n| read_before_waves(r, n, "spec.strategy.approval.beforeWaves", "approval"));
    let mut ok = before_waves.is_some();
    let mut deadline = DEFAULT_APPROVAL_DEADLINE;
    if let Some(d) = f.optional("deadline") {
        match r.duration(d, "spec.strategy.approval.deadline") {
            Some(d) if !d.is_zero() => deadline = d,
            Some(_) => {
                r.error(
                    d.pos,
                    "spec.strategy.approval.deadline",
                    "expected a duration above zero, such as `30m`",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(Approval {
        before_waves: before_waves?,
        deadline,
        pos: node.pos,
    })
}

fn read_max_failures(r: &mut Reader, node: &Node) -> Option<MaxFailures> {
    const PATH: &str = "spec.strategy.maxFailures";
    if let Some(Scalar::Str(s)) = node.scalar() {
        if let Some(p) = s.strip_suffix('%')
            && let Ok(p) = p.trim().parse::<u32>()
            && p <= 100
        {
            return Some(MaxFailures::Percent(p));
        }
        r.error(
            node.pos,
            PATH,
            format!(
                "expected a count (`1`) or a percentage from 0% to 100% (`25%`), found `{}`",
                crate::de::truncate(s, 40)
            ),
        );
        return None;
    }
    r.count(node, PATH, 0, 10_000).map(MaxFailures::Count)
}

pub(crate) fn read_health(r: &mut Reader, node: &Node) -> Option<Health> {
    let f = r.fields(node, "spec.health", HEALTH)?;
    let progress_deadline = match f.optional("progressDeadline") {
        Some(n) => r.duration(n, "spec.health.progressDeadline"),
        None => Some(DEFAULT_PROGRESS_DEADLINE),
    };
    let min_ready_window = match f.optional("minReadyWindow") {
        Some(n) => r.duration(n, "spec.health.minReadyWindow"),
        None => Some(DEFAULT_MIN_READY_WINDOW),
    };
    if let (Some(p), Some(n)) = (progress_deadline, f.get("progressDeadline"))
        && p.is_zero()
    {
        r.error(n.pos, "spec.health.progressDeadline", "must be more than zero");
        return None;
    }
    Some(Health {
        progress_deadline: progress_deadline?,
        min_ready_window: min_ready_window?,
    })
}

pub(crate) fn read_options(r: &mut Reader, node: &Node) -> Option<Options> {
    let f = r.fields(node, "spec.options", OPTIONS)?;
    let mut o = Options::default();
    let mut ok = true;
    for (name, slot) in [
        ("forceRoll", &mut o.force_roll),
        ("adopt", &mut o.adopt),
        ("forceConflicts", &mut o.force_conflicts),
        ("allowMassDeletion", &mut o.allow_mass_deletion),
    ] {
        if let Some(n) = f.optional(name) {
            match r.bool(n, &f.at(name)) {
                Some(b) => *slot = b,
                None => ok = false,
            }
        }
    }
    ok.then_some(o)
}
