//! Notifications: operation events (started, wave settled, paused, rolling back,
//! succeeded, failed, aborted, cancelled) posted to Slack-compatible incoming webhooks
//! and generic JSON webhooks, each filtered by event and by scope (the same scope as a
//! token's: environments, contexts, regions, labels, namespaces, releases).
//!
//! Delivery never holds up a rollout: the core hands every committed operation change to
//! this task, which works out the events and queues them per webhook; each webhook's
//! worker posts them in order, retrying with exponential backoff. A notification that still fails goes to the dead-letter file (a
//! JSON line each) and the log. What a notification says comes from the operation as the
//! API shows it (messages masked by the coordinator), and a webhook's URL, which for
//! Slack is a credential, is never logged: webhooks are named.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Scope;
use crate::core::ContextInfo;
use crate::model::{ContextPhase, Operation, OperationKind, OperationPhase};

/// `notifications:` in the daemon config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Where notifications go.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Attempts per notification before it is dead-lettered.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The wait before the first retry, in milliseconds; it doubles with each retry.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    /// A file that collects the notifications no attempt delivered (JSON lines:
    /// webhook, event, attempts, last error, payload). Unset: they are only logged.
    #[serde(default)]
    pub dead_letter_file: Option<PathBuf>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            webhooks: Vec::new(),
            attempts: default_attempts(),
            backoff_ms: default_backoff(),
            dead_letter_file: None,
        }
    }
}

fn default_attempts() -> u32 {
    5
}
fn default_backoff() -> u64 {
    1000
}

/// One webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook in logs and dead letters (its URL never appears there).
    pub name: String,
    /// The URL to POST to.
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding the URL (a Slack webhook URL is a credential).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// `slack` (`{"text": ...}`, what Slack, Mattermost and Rocket.Chat take) or `json`
    /// (the event as a JSON object).
    #[serde(default = "default_format")]
    pub format: String,
    /// The events to send (`started`, `wave_settled`, `paused`, `rolling_back`,
    /// `succeeded`, `failed`, `aborted`, `cancelled`); empty: all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only operations of releases in this scope (every context they touch); unset: all.
    #[serde(default)]
    pub scope: Option<Scope>,
}

/// Notifications waiting per webhook before new ones are dead-lettered at once.
const QUEUE: usize = 1000;

fn default_format() -> String {
    "json".into()
}

/// The events a notification can be about.
pub const EVENTS: &[&str] = &[
    "started",
    "wave_settled",
    "gate_waiting",
    "paused",
    "rolling_back",
    "succeeded",
    "failed",
    "aborted",
    "cancelled",
];

impl NotificationsConfig {
    /// Checks every webhook; the error is `(key, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let mut names = std::collections::BTreeSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let key = |field: &str| format!("notifications.webhooks[{i}].{field}");
            if w.name.trim().is_empty() || !names.insert(w.name.as_str()) {
                return Err((
                    key("name"),
                    format!("{:?}: expected a unique, non-empty name", w.name),
                ));
            }
            match (&w.url, &w.url_file) {
                (Some(u), None) if u.starts_with("http://") || u.starts_with("https://") => {}
                (Some(_), None) => {
                    return Err((key("url"), "expected an http:// or https:// URL".into()));
                }
                (None, Some(_)) => {}
                _ => return Err((key("url"), "give exactly one of `url` and `url_file`".into())),
            }
            if !matches!(w.format.as_str(), "slack" | "json") {
                return Err((
                    key("format"),
                    format!("expected `slack` or `json`, got {:?}", w.format),
                ));
            }
            if let Some(bad) = w.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
                return Err((
                    key("events"),
                    format!("unknown event {bad:?}; expected any of {}", EVENTS.join(", ")),
                ));
            }
            if let Some(s) = &w.scope {
                s.validate().map_err(|r| (key("scope"), r))?;
            }
        }
        if self.attempts == 0 {
            return Err(("notifications.attempts".into(), "must be at least 1".into()));
        }
        Ok(())
    }
}

/// One thing worth telling people about an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// One of [`EVENTS`].
    pub event: &'static str,
    /// For `wave_settled`: the wave (1-based).
    pub wave: Option<usize>,
}

/// What was last seen of an operation, to tell what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    phase: OperationPhase,
    current_wave: usize,
    /// The gated wave it waits at (0-based).
    awaiting: Option<usize>,
}

/// Works out the events between what was seen of an operation before and now.
fn notices(before: Option<Seen>, op: &Operation) -> Vec<Notice> {
    let mut out = Vec::new();
    let now = Seen {
        phase: op.phase,
        current_wave: op.current_wave,
        awaiting: op.awaiting_approval.map(|a| a.wave),
    };
    let notice = |event| Notice { event, wave: None };
    let was = before.map(|b| b.phase);
    let active = |p: Option<OperationPhase>| {
        matches!(
            p,
            Some(
                OperationPhase::Preflight
                    | OperationPhase::Running
                    | OperationPhase::Paused
                    | OperationPhase::RollingBack
            )
        )
    };
    // Started: the first time it runs (preflight included), or first seen finished
    // without having been seen running (a fast operation).
    if !active(was)
        && !matches!(was, Some(p) if p.is_final())
        && now.phase != OperationPhase::Queued
        && now.phase != OperationPhase::Cancelled
    {
        out.push(notice("started"));
    }
    // Waves that settled since: every wave before the current one, and all of them once
    // the deploy succeeded.
    if op.kind == OperationKind::Deploy {
        let from = before.map_or(0, |b| b.current_wave);
        let to = if now.phase == OperationPhase::Succeeded {
            op.plan.waves.len()
        } else {
            now.current_wave.min(op.plan.waves.len())
        };
        out.extend((from..to).map(|w| Notice {
            event: "wave_settled",
            wave: Some(w + 1),
        }));
    }
    if let Some(w) = now.awaiting
        && before.and_then(|b| b.awaiting) != Some(w)
    {
        out.push(Notice {
            event: "gate_waiting",
            wave: Some(w + 1),
        });
    }
    if was != Some(now.phase) {
        let event = match now.phase {
            OperationPhase::Paused => Some("paused"),
            OperationPhase::RollingBack => Some("rolling_back"),
            OperationPhase::Succeeded => Some("succeeded"),
            OperationPhase::Failed => Some("failed"),
            OperationPhase::Aborted => Some("aborted"),
            OperationPhase::Cancelled => Some("cancelled"),
            _ => None,
        };
        out.extend(event.map(notice));
    }
    out
}

/// The notification's JSON (`json` format): the operation as the API shows it.
fn json_payload(op: &Operation, n: &Notice, registry: &BTreeMap<String, ContextInfo>) -> Value {
    let count = |p: ContextPhase| op.contexts.values().filter(|c| c.phase == p).count();
    let failed: BTreeMap<&str, &str> = op
        .contexts
        .iter()
        .filter(|(_, c)| c.phase == ContextPhase::Failed)
        .map(|(name, c)| (name.as_str(), c.message.as_str()))
        .collect();
    let environments: std::collections::BTreeSet<&str> = op
        .contexts
        .keys()
        .filter_map(|c| registry.get(c).map(|i| i.env.as_str()))
        .collect();
    json!({
        "event": n.event,
        "wave": n.wave,
        "waves": op.plan.waves.len(),
        "release": op.release,
        "operationId": op.id,
        "kind": match op.kind { OperationKind::Deploy => "deploy", OperationKind::Rollback => "rollback" },
        "revision": op.revision,
        "rollbackTo": op.rollback_to,
        "phase": format!("{:?}", op.phase).to_uppercase(),
        "message": op.message,
        "requestedBy": op.requested_by,
        "reason": op.reason,
        "environments": environments,
        "contexts": {
            "total": op.contexts.len(),
            "healthy": count(ContextPhase::Healthy),
            "failed": count(ContextPhase::Failed),
        },
        "failures": failed,
        "at": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    })
}

/// The notification as a Slack message: one line people read at a glance.
fn slack_payload(op: &Operation, n: &Notice) -> Value {
    let icon = match n.event {
        "succeeded" => ":white_check_mark:",
        "failed" => ":x:",
        "rolling_back" => ":rewind:",
        "paused" => ":double_vertical_bar:",
        "gate_waiting" => ":raised_hand:",
        "aborted" | "cancelled" => ":no_entry_sign:",
        _ => ":arrow_forward:",
    };
    let what = match op.kind {
        OperationKind::Deploy => format!("revision {}", op.revision),
        OperationKind::Rollback => format!(
            "rollback to revision {}",
            op.rollback_to.map_or_else(|| "?".into(), |r| r.to_string())
        ),
    };
    let event = match (n.event, n.wave) {
        ("wave_settled", Some(w)) => format!("wave {w} of {} settled", op.plan.waves.len()),
        ("gate_waiting", Some(w)) => format!(
            "wave {w} waits for an approval (`convoy approve {} --wave {w}`)",
            op.release
        ),
        (e, _) => e.replace('_', " "),
    };
    let mut text = format!("{icon} *{}* {what}: {event}", op.release);
    if !op.message.is_empty() {
        text.push_str(&format!(" — {}", op.message));
    }
    for (ctx, c) in op
        .contexts
        .iter()
        .filter(|(_, c)| c.phase == ContextPhase::Failed)
    {
        text.push_str(&format!("\n• {ctx}: {}", c.message));
    }
    text.push_str(&format!("\n_requested by {}", op.requested_by));
    if !op.reason.is_empty() {
        text.push_str(&format!(": {}", op.reason));
    }
    text.push('_');
    json!({ "text": text })
}

/// A webhook ready to post to.
struct Webhook {
    name: String,
    url: String,
    slack: bool,
    events: Vec<String>,
    scope: Option<Scope>,
}

impl Webhook {
    fn wants(&self, op: &Operation, n: &Notice, registry: &BTreeMap<String, ContextInfo>) -> bool {
        if !self.events.is_empty() && !self.events.iter().any(|e| e == n.event) {
            return false;
        }
        let Some(scope) = &self.scope else { return true };
        let namespace = op.release.split_once('.').map_or("", |(_, ns)| ns);
        scope
            .refusal(
                &op.release,
                namespace,
                op.contexts.keys().map(String::as_str),
                registry,
            )
            .is_none()
    }
}

/// Posts notifications; cheap to clone.
#[derive(Clone)]
struct Sender {
    http: reqwest::Client,
    attempts: u32,
    backoff: Duration,
    dead_letters: Option<Arc<std::sync::Mutex<PathBuf>>>,
}

impl Sender {
    /// Posts `payload`, retrying with exponential backoff; dead-letters it when every
    /// attempt failed.
    async fn deliver(&self, webhook: &Webhook, event: &'static str, payload: Value) {
        let mut last_error = String::new();
        for attempt in 1..=self.attempts {
            let request = self
                .http
                .post(&webhook.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(payload.to_string());
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    tracing::debug!(webhook = %webhook.name, event, attempt, "notification delivered");
                    return;
                }
                Ok(r) => last_error = format!("HTTP {}", r.status()),
                // Without the URL: a Slack webhook URL is a credential.
                Err(e) => last_error = e.without_url().to_string(),
            }
            if attempt < self.attempts {
                tracing::warn!(webhook = %webhook.name, event, attempt, error = %last_error, "notification not delivered; retrying");
                tokio::time::sleep(self.backoff * 2u32.saturating_pow(attempt - 1)).await;
            }
        }
        self.dead_letter(webhook, event, self.attempts, &last_error, &payload)
            .await;
    }

    /// Logs a notification that was not delivered and appends it to the dead-letter file.
    async fn dead_letter(&self, webhook: &Webhook, event: &str, attempts: u32, error: &str, payload: &Value) {
        tracing::error!(
            webhook = %webhook.name,
            event,
            attempts,
            error,
            "notification dead-lettered: no attempt delivered it"
        );
        if let Some(file) = &self.dead_letters {
            let line = json!({
                "webhook": webhook.name,
                "event": event,
                "attempts": attempts,
                "lastError": error,
                "payload": payload,
            });
            let path = file.lock().unwrap_or_else(|p| p.into_inner());
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&*path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
            if let Err(e) = written {
                tracing::error!(file = %path.display(), error = %e, "cannot write the dead-letter file");
            }
        }
    }
}

/// Starts the notifier for `cfg` on the operations `updates` delivers; nothing when no
/// webhook is configured.
pub fn spawn(
    cfg: &NotificationsConfig,
    registry: BTreeMap<String, ContextInfo>,
    mut updates: tokio::sync::mpsc::UnboundedReceiver<Operation>,
) -> Result<(), String> {
    let mut webhooks = Vec::new();
    for w in &cfg.webhooks {
        let url = match (&w.url, &w.url_file) {
            (Some(u), _) => u.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| format!("notifications webhook {}: url_file {}: {e}", w.name, f.display()))?
                .trim()
                .to_string(),
            (None, None) => return Err(format!("notifications webhook {}: no url", w.name)),
        };
        webhooks.push(Arc::new(Webhook {
            name: w.name.clone(),
            url,
            slack: w.format == "slack",
            events: w.events.clone(),
            scope: w.scope.clone(),
        }));
    }
    let sender = Sender {
        http: crate::tls::https_client(Duration::from_secs(10)).map_err(|e| format!("notifications: {e}"))?,
        attempts: cfg.attempts,
        backoff: Duration::from_millis(cfg.backoff_ms),
        dead_letters: cfg
            .dead_letter_file
            .clone()
            .map(|p| Arc::new(std::sync::Mutex::new(p))),
    };
    // One queue and one worker per webhook: its notifications arrive in order, and a
    // webhook that is down delays only its own.
    let webhooks: Vec<_> = webhooks
        .into_iter()
        .map(|w| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<(&'static str, Value)>(QUEUE);
            let (sender, hook) = (sender.clone(), w.clone());
            tokio::spawn(async move {
                while let Some((event, payload)) = rx.recv().await {
                    sender.deliver(&hook, event, payload).await;
                }
            });
            (w, tx)
        })
        .collect();
    let started = crate::model::now_millis();
    tokio::spawn(async move {
        let mut seen: HashMap<String, Seen> = HashMap::new();
        while let Some(op) = updates.recv().await {
            let before = seen.get(&op.id).copied();
            // An operation already running when this coordinator started (it resumed
            // after a restart) was announced by the one before: from here on, only what
            // changes.
            let resumed =
                before.is_none() && op.started_at.is_some_and(|t| t < started) && !op.phase.is_final();
            let told = if resumed { Vec::new() } else { notices(before, &op) };
            for n in told {
                for (w, queue) in webhooks.iter().filter(|(w, _)| w.wants(&op, &n, &registry)) {
                    let payload = if w.slack {
                        slack_payload(&op, &n)
                    } else {
                        json_payload(&op, &n, &registry)
                    };
                    if let Err(tokio::sync::mpsc::error::TrySendError::Full((event, payload))) =
                        queue.try_send((n.event, payload))
                    {
                        // The webhook has been failing for a long time: this one goes
                        // straight to the dead letters rather than holding memory.
                        let sender = sender.clone();
                        let w = w.clone();
                        tokio::spawn(async move {
                            sender
                                .dead_letter(
                                    &w,
                                    event,
                                    0,
                                    &format!("{QUEUE} notifications already waiting"),
                                    &payload,
                                )
                                .await;
                        });
                    }
                }
            }
            if op.phase.is_final() {
                seen.remove(&op.id);
            } else {
                seen.insert(
                    op.id.clone(),
                    Seen {
                        phase: op.phase,
                        current_wave: op.current_wave,
                        awaiting: op.awaiting_approval.map(|a| a.wave),
                    },
                );
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContextState, Plan};

    fn op(phase: OperationPhase, wave: usize) -> Operation {
        let plan = Plan {
            progress_deadline: Duration::from_secs(60),
            min_ready_window: Duration::ZERO,
            preflight: true,
            ..Plan::for_tests(&[&["a"], &["b"]])
        };
        let mut o = Operation::queued(
            "op-1".into(),
            "web.shop".into(),
            OperationKind::Deploy,
            3,
            plan,
            &BTreeMap::new(),
            crate::model::Requested {
                by: "jenkins",
                reason: "INC-1",
                at: 1,
            },
        );
        o.phase = phase;
        o.current_wave = wave;
        o
    }

    fn events(before: Option<(OperationPhase, usize)>, now: (OperationPhase, usize)) -> Vec<String> {
        let before = before.map(|(phase, current_wave)| Seen {
            phase,
            current_wave,
            awaiting: None,
        });
        notices(before, &op(now.0, now.1))
            .into_iter()
            .map(|n| match n.wave {
                Some(w) => format!("{}:{w}", n.event),
                None => n.event.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_rollout_tells_its_start_its_waves_and_its_end_once_each() {
        use OperationPhase::*;
        assert!(events(None, (Queued, 0)).is_empty());
        assert_eq!(events(Some((Queued, 0)), (Preflight, 0)), ["started"]);
        assert!(events(Some((Preflight, 0)), (Running, 0)).is_empty());
        assert_eq!(events(Some((Running, 0)), (Running, 1)), ["wave_settled:1"]);
        assert_eq!(events(Some((Running, 1)), (Paused, 1)), ["paused"]);
        assert!(events(Some((Paused, 1)), (Running, 1)).is_empty());
        assert_eq!(
            events(Some((Running, 1)), (Succeeded, 1)),
            ["wave_settled:2", "succeeded"]
        );
        // Seen only at its end (a fast one): started, every wave, succeeded.
        assert_eq!(
            events(None, (Succeeded, 1)),
            ["started", "wave_settled:1", "wave_settled:2", "succeeded"]
        );
        assert_eq!(events(Some((Running, 0)), (RollingBack, 0)), ["rolling_back"]);
        assert_eq!(events(Some((RollingBack, 0)), (Failed, 0)), ["failed"]);
        assert_eq!(events(Some((Queued, 0)), (Cancelled, 0)), ["cancelled"]);
        // An approval gate: told once, with the wave that waits.
        let mut waiting = op(Running, 0);
        waiting.awaiting_approval = Some(crate::model::AwaitingApproval {
            wave: 1,
            since: 5,
            gate: None,
            step: None,
        });
        let before = Seen {
            phase: Running,
            current_wave: 0,
            awaiting: None,
        };
        let told: Vec<_> = notices(Some(before), &waiting)
            .into_iter()
            .map(|n| (n.event, n.wave))
            .collect();
        assert_eq!(told, [("gate_waiting", Some(2))]);
        let again = Seen {
            awaiting: Some(1),
            ..before
        };
        assert!(notices(Some(again), &waiting).is_empty());
        let slack = slack_payload(
            &waiting,
            &Notice {
                event: "gate_waiting",
                wave: Some(2),
            },
        );
        assert!(
            slack["text"]
                .as_str()
                .unwrap()
                .contains("wave 2 waits for an approval"),
            "{slack}"
        );
    }

    #[test]
    fn payloads_say_what_happened_and_where() {
        let mut o = op(OperationPhase::Failed, 0);
        o.message = "rolled 1 context(s) back to revision 2".into();
        let a: &mut ContextState = o.contexts.get_mut("a").unwrap();
        a.phase = ContextPhase::Failed;
        a.message = "deployment/web: CrashLoopBackOff".into();
        let n = Notice {
            event: "failed",
            wave: None,
        };
        let slack = slack_payload(&o, &n)["text"].as_str().unwrap().to_string();
        assert!(
            slack.starts_with(":x: *web.shop* revision 3: failed — rolled 1"),
            "{slack}"
        );
        assert!(slack.contains("• a: deployment/web: CrashLoopBackOff"), "{slack}");
        assert!(slack.ends_with("_requested by jenkins: INC-1_"), "{slack}");
        let j = json_payload(&o, &n, &BTreeMap::new());
        assert_eq!(j["event"], "failed");
        assert_eq!(j["phase"], "FAILED");
        assert_eq!(j["contexts"]["failed"], 1);
        assert_eq!(j["failures"]["a"], "deployment/web: CrashLoopBackOff");
    }

    #[test]
    fn config_errors_name_the_webhook_field() {
        let cfg = |yaml: &str| -> NotificationsConfig { serde_yaml::from_str(yaml).unwrap() };
        let e = cfg("webhooks: [{name: a, url: 'ftp://x'}]")
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "notifications.webhooks[0].url");
        let e = cfg("webhooks: [{name: a, url: 'http://x', events: [deployed]}]")
            .validate()
            .unwrap_err();
        assert!(e.0.ends_with(".events") && e.1.contains("deployed"), "{e:?}");
        let e = cfg("webhooks: [{name: a, url: 'http://x'}, {name: a, url_file: /f}]")
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "notifications.webhooks[1].name");
        assert!(
            cfg("webhooks: [{name: a, url: 'https://x', format: slack, events: [failed]}]")
                .validate()
                .is_ok()
        );
    }
}
