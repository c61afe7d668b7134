//! The `sim.convoy.dev/behavior` annotation: how a simulated pod behaves.
//!
//! Set on a pod template (`spec.template.metadata.annotations`); both the in-memory
//! backend and the test pod simulator follow it. Grammar: `MODE[,KEY=DURATION...]`.
//!
//! | value | what the pod does |
//! |---|---|
//! | `healthy` / `healthy,after=3s` | running, ready after `after` (default 1s) |
//! | `slow` / `slow,after=1m` | the same with a longer default (20s) |
//! | `crashloop` / `crashloop,after=2s` | starts, exits after `after` (default 1s), restarts with back-off: `CrashLoopBackOff`, never ready |
//! | `flapping,ready=1s,after=5s` | ready after `ready`, then crashes `after` later, restarts, becomes ready again, and so on |
//! | `never-ready` | running, but its readiness probe never passes |
//! | `image-pull-error` | stays pending: `ErrImagePull`, then `ImagePullBackOff` |
//! | `config-error` | stays pending: `CreateContainerConfigError` |
//! | `succeed` / `succeed,after=2s` | runs to completion: exits 0 after `after` (default 1s); for Job (and hook) pods |
//! | `fail` / `fail,after=2s` | exits 1 after `after` (default 1s) and stays failed: a failing Job or hook |
//!
//! A pod without the annotation is `healthy` (the test pod simulator makes a Job's pod
//! `succeed`, which for a pod that is not restarted is the same thing).

use std::fmt;
use std::time::Duration;

/// The annotation key.
pub const ANNOTATION: &str = "sim.convoy.dev/behavior";

/// How a simulated pod behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Ready after `after`.
    Healthy { after: Duration },
    /// Crashes `after` each start; never ready.
    CrashLoop { after: Duration },
    /// Ready after `ready`, then crashes `after` later, then again.
    Flapping { ready: Duration, after: Duration },
    /// Running, never ready.
    NeverReady,
    /// Pending with an image pull error.
    ImagePullError,
    /// Pending with a container config error.
    ConfigError,
    /// Runs to completion (exit 0) after `after`: a Job's or a hook's pod.
    Succeed { after: Duration },
    /// Exits 1 after `after` and is not restarted: a failing Job or hook.
    Fail { after: Duration },
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior::Healthy {
            after: Duration::from_secs(1),
        }
    }
}

/// An annotation value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {ANNOTATION} value {value:?}: {reason}")]
pub struct BehaviorError {
    pub value: String,
    pub reason: String,
}

impl Behavior {
    /// Parses an annotation value.
    pub fn parse(value: &str) -> Result<Self, BehaviorError> {
        let err = |reason: String| BehaviorError {
            value: value.to_string(),
            reason,
        };
        let mut parts = value.split(',').map(str::trim);
        let mode = parts.next().unwrap_or_default();
        let mut after = None;
        let mut ready = None;
        for part in parts {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err(format!("expected KEY=DURATION, got {part:?}")))?;
            let d = parse_duration(v).ok_or_else(|| {
                err(format!(
                    "{k}: expected a duration like 500ms, 3s or 1m, got {v:?}"
                ))
            })?;
            match k {
                "after" => after = Some(d),
                "ready" => ready = Some(d),
                other => {
                    return Err(err(format!(
                        "unknown key {other:?} (expected `after` or `ready`)"
                    )));
                }
            }
        }
        let secs = Duration::from_secs;
        let behavior = match mode {
            "healthy" => Behavior::Healthy {
                after: after.unwrap_or(secs(1)),
            },
            "slow" => Behavior::Healthy {
                after: after.unwrap_or(secs(20)),
            },
            "crashloop" => Behavior::CrashLoop {
                after: after.unwrap_or(secs(1)),
            },
            "flapping" => Behavior::Flapping {
                ready: ready.unwrap_or(secs(1)),
                after: after.unwrap_or(secs(5)),
            },
            "never-ready" => Behavior::NeverReady,
            "image-pull-error" => Behavior::ImagePullError,
            "config-error" => Behavior::ConfigError,
            "succeed" => Behavior::Succeed {
                after: after.unwrap_or(secs(1)),
            },
            "fail" => Behavior::Fail {
                after: after.unwrap_or(secs(1)),
            },
            other => {
                return Err(err(format!(
                    "unknown mode {other:?} (expected healthy, slow, crashloop, flapping, never-ready, image-pull-error, config-error, succeed or fail)"
                )));
            }
        };
        if ready.is_some() && !matches!(behavior, Behavior::Flapping { .. }) {
            return Err(err("`ready` only applies to `flapping`".into()));
        }
        Ok(behavior)
    }

    /// The behaviour for a pod with these annotations (`healthy` when absent).
    pub fn from_annotations<'a>(
        mut annotations: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> Result<Self, BehaviorError> {
        annotations
            .find(|(k, _)| k.as_str() == ANNOTATION)
            .map_or(Ok(Behavior::default()), |(_, v)| Behavior::parse(v))
    }
}

impl fmt::Display for Behavior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| format!("{}ms", d.as_millis());
        match self {
            Behavior::Healthy { after } => write!(f, "healthy,after={}", ms(after)),
            Behavior::CrashLoop { after } => write!(f, "crashloop,after={}", ms(after)),
            Behavior::Flapping { ready, after } => {
                write!(f, "flapping,ready={},after={}", ms(ready), ms(after))
            }
            Behavior::NeverReady => f.write_str("never-ready"),
            Behavior::ImagePullError => f.write_str("image-pull-error"),
            Behavior::ConfigError => f.write_str("config-error"),
            Behavior::Succeed { after } => write!(f, "succeed,after={}", ms(after)),
            Behavior::Fail { after } => write!(f, "fail,after={}", ms(after)),
        }
    }
}

/// `500ms`, `3s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_mode_with_defaults_and_overrides() {
        let s = Duration::from_secs;
        assert_eq!(
            Behavior::parse("healthy").unwrap(),
            Behavior::Healthy { after: s(1) }
        );
        assert_eq!(
            Behavior::parse("slow").unwrap(),
            Behavior::Healthy { after: s(20) }
        );
        assert_eq!(
            Behavior::parse("healthy, after=250ms").unwrap(),
            Behavior::Healthy {
                after: Duration::from_millis(250)
            }
        );
        assert_eq!(
            Behavior::parse("crashloop,after=2s").unwrap(),
            Behavior::CrashLoop { after: s(2) }
        );
        assert_eq!(
            Behavior::parse("flapping,ready=2s,after=1m").unwrap(),
            Behavior::Flapping {
                ready: s(2),
                after: s(60)
            }
        );
        assert_eq!(Behavior::parse("never-ready").unwrap(), Behavior::NeverReady);
        assert_eq!(
            Behavior::parse("image-pull-error").unwrap(),
            Behavior::ImagePullError
        );
        assert_eq!(Behavior::parse("config-error").unwrap(), Behavior::ConfigError);
        assert_eq!(
            Behavior::parse("succeed").unwrap(),
            Behavior::Succeed { after: s(1) }
        );
        assert_eq!(
            Behavior::parse("fail,after=3s").unwrap(),
            Behavior::Fail { after: s(3) }
        );
    }

    #[test]
    fn display_round_trips() {
        for v in [
            "healthy,after=3s",
            "crashloop",
            "flapping,ready=1s,after=4s",
            "never-ready",
            "image-pull-error",
            "succeed,after=2s",
            "fail",
        ] {
            let b = Behavior::parse(v).unwrap();
            assert_eq!(Behavior::parse(&b.to_string()).unwrap(), b, "{v}");
        }
    }

    #[test]
    fn rejects_bad_values_with_a_reason() {
        for (v, want) in [
            ("sleepy", "unknown mode"),
            ("healthy,after", "KEY=DURATION"),
            ("healthy,after=3 parsecs", "duration"),
            ("healthy,when=3s", "unknown key"),
            ("healthy,ready=1s", "only applies to `flapping`"),
            ("healthy,after=99999999999999999999h", "duration"),
        ] {
            let e = Behavior::parse(v).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(ANNOTATION), "{v}: {e}");
        }
    }

    #[test]
    fn absent_annotation_is_healthy() {
        let none: Vec<(String, String)> = vec![("other".into(), "x".into())];
        assert_eq!(
            Behavior::from_annotations(none.iter().map(|(k, v)| (k, v))).unwrap(),
            Behavior::default()
        );
    }
}
