//! Checks that need only the release file itself: duplicates, waves covering the targets,
//! scaling and canary naming targets, every target resolving every secret, a sane
//! `maxFailures`. They run once the file has parsed without errors.

use std::collections::{BTreeMap, BTreeSet};

use crate::de::{Reader, index, join};
use crate::model::*;
use crate::yaml::Pos;

/// Checks that need only the file: duplicates, waves covering targets, scaling and canary
/// naming targets, every target resolving every secret.
pub(crate) fn check_self_consistency(r: &mut Reader, rel: &Release) {
    let spec = &rel.spec;
    let mut seen: BTreeMap<&str, Pos> = BTreeMap::new();
    for (i, c) in spec.contexts.iter().enumerate() {
        if let Some(first) = seen.insert(&c.value, c.pos) {
            seen.insert(&c.value, first);
            r.error(
                c.pos,
                &index("spec.contexts", i),
                format!("context `{}` is listed twice (first at {first})", c.value),
            );
        }
    }
    let targets: BTreeSet<&str> = rel.targets().collect();
    let not_a_target = |r: &mut Reader, name: &str, pos: Pos, path: &str| {
        let hint = crate::de::did_you_mean(name, targets.iter().copied())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        r.error(pos, path, format!("`{name}` is not one of spec.contexts{hint}"));
    };

    match &spec.strategy.order {
        Order::AllAtOnce => {}
        Order::Canary(canary) => {
            for (i, c) in canary.iter().enumerate() {
                if !targets.contains(c.value.as_str()) {
                    not_a_target(r, &c.value, c.pos, &index("spec.strategy.canary", i));
                }
            }
        }
        Order::Waves(waves) => {
            let mut placed: BTreeMap<&str, Pos> = BTreeMap::new();
            for (w, wave) in waves.iter().enumerate() {
                for (i, c) in wave.iter().enumerate() {
                    let path = format!("spec.strategy.waves[{w}][{i}]");
                    if !targets.contains(c.value.as_str()) {
                        not_a_target(r, &c.value, c.pos, &path);
                    } else if let Some(first) = placed.get(c.value.as_str()) {
                        r.error(c.pos, &path, format!("`{}` is already in a wave (at {first}); each target goes in exactly one wave", c.value));
                    } else {
                        placed.insert(&c.value, c.pos);
                    }
                }
            }
            let missing: Vec<&str> = targets
                .iter()
                .copied()
                .filter(|t| !placed.contains_key(t))
                .collect();
            if !missing.is_empty() {
                let pos = waves
                    .first()
                    .and_then(|w| w.first())
                    .map_or(rel.metadata.pos, |c| c.pos);
                r.error(
                    pos,
                    "spec.strategy.waves",
                    format!(
                        "targets in no wave: {}; each target goes in exactly one wave",
                        missing.join(", ")
                    ),
                );
            }
        }
    }

    if let Some(a) = &spec.strategy.approval {
        let waves = rel.waves().len();
        if let Some(beyond) = a.before_waves.iter().find(|w| **w as usize > waves) {
            r.error(
                a.pos,
                "spec.strategy.approval.beforeWaves",
                format!("wave {beyond} does not exist: the release has {waves} wave(s)"),
            );
        }
    }

    let waves = rel.waves().len();
    let mut names: Vec<&str> = Vec::new();
    for (i, g) in spec.strategy.gates.iter().enumerate() {
        let path = format!("spec.strategy.gates[{i}]");
        if let Some(beyond) = g.before_waves.iter().find(|w| **w as usize > waves) {
            r.error(
                g.pos,
                &format!("{path}.beforeWaves"),
                format!("wave {beyond} does not exist: the release has {waves} wave(s)"),
            );
        }
        if names.contains(&g.name.as_str()) {
            r.error(
                g.pos,
                &format!("{path}.name"),
                format!("gate {:?} is named twice; each gate needs its own name", g.name),
            );
        }
        names.push(&g.name);
    }
    let steps: &[CanaryStep] = spec.strategy.in_cluster.as_ref().map_or(&[], InCluster::steps);
    let kind = match &spec.strategy.in_cluster {
        Some(InCluster::BlueGreen(_)) => "blueGreen",
        _ => "canary",
    };
    for (i, step) in steps.iter().enumerate() {
        if let CanaryStep::Gate { name, pos } = step
            && !names.contains(&name.as_str())
        {
            let known = if names.is_empty() {
                "the release has no `spec.strategy.gates`".to_string()
            } else {
                format!("known: {}", names.join(", "))
            };
            r.error(
                *pos,
                &format!("spec.strategy.inCluster.{kind}.steps[{i}].gate"),
                format!("{name:?} is not a gate of `spec.strategy.gates` ({known})"),
            );
        }
    }
    for (i, g) in spec.strategy.gates.iter().enumerate() {
        let named = steps
            .iter()
            .any(|s| matches!(s, CanaryStep::Gate { name, .. } if *name == g.name));
        if g.before_waves.is_empty() && !named {
            r.error(
                g.pos,
                &format!("spec.strategy.gates[{i}].beforeWaves"),
                format!(
                    "gate {:?} runs nowhere: give the waves it runs before (`beforeWaves: [2]`) or name it in an in-cluster step (`gate: {}`)",
                    g.name, g.name
                ),
            );
        }
    }
    if let (Some(in_cluster), Some(limit)) = (&spec.strategy.in_cluster, spec.strategy.max_concurrency) {
        let pos = match in_cluster {
            InCluster::Canary(c) => c.pos,
            InCluster::BlueGreen(b) => b.pos,
        };
        let widest = rel.waves().iter().map(Vec::len).max().unwrap_or(0);
        if (limit as usize) < widest {
            r.error(
                pos,
                "spec.strategy.maxConcurrency",
                format!(
                    "{limit} is less than the widest wave ({widest} contexts), but in-cluster steps run in step across a wave, every context at once; raise maxConcurrency to {widest} or split the wave"
                ),
            );
        }
    }

    if let Some(pos) = spec.strategy.max_failures_pos {
        let n = targets.len();
        if spec.strategy.max_failures.allowed(n) >= n {
            r.error(
                pos,
                "spec.strategy.maxFailures",
                format!("tolerates {} failed contexts out of {n} targets, so the rollout could never fail; expected fewer than {n}", spec.strategy.max_failures.allowed(n)),
            );
        }
    }

    let mut scaled: BTreeMap<&str, Pos> = BTreeMap::new();
    for (i, s) in spec.scaling.iter().enumerate() {
        let path = index("spec.scaling", i);
        if !targets.contains(s.context.as_str()) {
            not_a_target(r, &s.context, s.pos, &join(&path, "context"));
        }
        if let Some(first) = scaled.insert(&s.context, s.pos) {
            r.error(
                s.pos,
                &path,
                format!(
                    "context `{}` already has a scaling entry (at {first}); merge them",
                    s.context
                ),
            );
        }
        let mut names: BTreeMap<&str, Pos> = BTreeMap::new();
        for (j, rep) in s.replicas.iter().enumerate() {
            if let Some(first) = names.insert(&rep.name, rep.pos) {
                r.error(
                    rep.pos,
                    &index(&join(&path, "replicas"), j),
                    format!("`{}` is scaled twice (first at {first})", rep.name),
                );
            }
        }
    }

    let mut ids: BTreeMap<&str, Pos> = BTreeMap::new();
    for (i, s) in spec.secrets.iter().enumerate() {
        let path = index("spec.secrets", i);
        if let Some(first) = ids.insert(&s.secret_id, s.pos) {
            r.error(
                s.pos,
                &join(&path, "secret_id"),
                format!("duplicate secret_id `{}` (first at {first})", s.secret_id),
            );
        }
        let mut names: BTreeMap<&str, Pos> = BTreeMap::new();
        for (j, src) in s.sources.iter().enumerate() {
            if let Some(first) = names.insert(&src.context, src.pos) {
                r.error(
                    src.pos,
                    &format!("{path}.contexts[{j}].name"),
                    format!(
                        "`{}` has two entries for this secret (first at {first})",
                        src.context
                    ),
                );
            }
        }
        if !names.contains_key(DEFAULT_CONTEXT) {
            let unresolved: Vec<&str> = targets
                .iter()
                .copied()
                .filter(|t| !names.contains_key(t))
                .collect();
            if !unresolved.is_empty() {
                r.error(
                    s.pos,
                    &path,
                    format!(
                        "secret `{}` has no source for {}; add an entry for each, or a `{DEFAULT_CONTEXT}` entry",
                        s.secret_id,
                        unresolved.join(", ")
                    ),
                );
            }
        }
    }
}
