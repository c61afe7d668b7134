//! What a revision deployed, for its history: the container images of every workload
//! (read from the rendered objects) and the values it was submitted with (secrets
//! masked). Kept on the revision record so that `convoy history --show N` and
//! `--diff A B` answer "what is running where" without the chart or Vault.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{RevisionRecord, ValuesRecord, WorkloadImage};
use crate::prepare::RenderedManifest;

/// The values of one revision kept at most this large (serialized); larger values keep
/// their size only.
const MAX_VALUES_BYTES: usize = 256 * 1024;

/// (workload, container, image) of each container and init container in `manifests`.
pub fn images_of(manifests: &[RenderedManifest]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    // Rendered objects are JSON; only those naming an image are parsed.
    for m in manifests.iter().filter(|m| m.content.contains("\"image\"")) {
        let Ok(obj) = serde_json::from_str::<Value>(&m.content) else {
            continue;
        };
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let pod = match kind {
            "Pod" => &obj["spec"],
            "CronJob" => &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => &obj["spec"]["template"]["spec"],
        };
        for list in ["initContainers", "containers"] {
            for c in pod[list].as_array().into_iter().flatten() {
                if let Some(image) = c["image"].as_str() {
                    out.push((
                        format!("{kind}/{name}"),
                        c["name"].as_str().unwrap_or_default().to_string(),
                        image.to_string(),
                    ));
                }
            }
        }
    }
    out
}

/// Per-context images grouped: one entry per (workload, container, image) with the
/// contexts that run it, none listed when every one of the `targets` does.
pub fn group_images(
    per_context: &BTreeMap<String, impl AsRef<Vec<(String, String, String)>>>,
    targets: usize,
) -> Vec<WorkloadImage> {
    let mut by: BTreeMap<&(String, String, String), Vec<String>> = BTreeMap::new();
    for (ctx, images) in per_context {
        for i in images.as_ref() {
            let entry = by.entry(i).or_default();
            if entry.last() != Some(ctx) {
                entry.push(ctx.clone());
            }
        }
    }
    by.into_iter()
        .map(|((workload, container, image), contexts)| WorkloadImage {
            workload: workload.clone(),
            container: container.clone(),
            image: image.clone(),
            contexts: if contexts.len() == targets {
                Vec::new()
            } else {
                contexts
            },
        })
        .collect()
}

/// The values record of a release: shared values and each target's own, every string
/// equal to or containing a resolved secret masked.
pub fn values_record(
    release: &convoy_release::Release,
    masker: &convoy_release::mask::Masker,
) -> ValuesRecord {
    let mut contexts = BTreeMap::new();
    for ctx in release.targets() {
        let own = convoy_release::own_context_values(release, ctx);
        if own.as_object().is_some_and(|m| !m.is_empty()) {
            contexts.insert(ctx.to_string(), own);
        }
    }
    let mut record = ValuesRecord {
        release: convoy_release::release_values(release),
        contexts,
        omitted_bytes: None,
    };
    tidy(&mut record.release, masker);
    record.contexts.values_mut().for_each(|v| tidy(v, masker));
    let size = serde_json::to_vec(&record).map_or(0, |b| b.len());
    if size > MAX_VALUES_BYTES {
        return ValuesRecord {
            release: Value::Null,
            contexts: BTreeMap::new(),
            omitted_bytes: Some(size as u64),
        };
    }
    record
}

/// What `r`'s values changed against `previous` (the revision before it; none for the
/// first), as (context, change): the shared values under context "".
pub fn values_changed(
    r: &RevisionRecord,
    previous: Option<&RevisionRecord>,
) -> Vec<(String, convoy_release::ValueChange)> {
    previous
        .map(|p| {
            let as_json = |v: &ValuesRecord| serde_json::to_value(v).unwrap_or_default();
            convoy_release::record_changes(&as_json(&p.values), &as_json(&r.values))
        })
        .unwrap_or_default()
}

/// Masks every string that holds a resolved secret, and shows whole numbers as
/// integers (values are Helm's float64s: `3`, not `3.0`, is what the file said).
fn tidy(v: &mut Value, masker: &convoy_release::mask::Masker) {
    match v {
        Value::String(s) if masker.reveals(s) => *s = masker.mask(s),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| tidy(i, masker)),
        Value::Object(m) => m.values_mut().for_each(|i| tidy(i, masker)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(json: &str) -> RenderedManifest {
        RenderedManifest {
            source: "t".into(),
            content: json.into(),
        }
    }

    #[test]
    fn images_come_from_every_pod_template() {
        let ms = [
            manifest(
                r#"{"kind":"Deployment","metadata":{"name":"web"},"spec":{"template":{"spec":{"initContainers":[{"name":"migrate","image":"web:2-migrate"}],"containers":[{"name":"app","image":"web:2"},{"name":"proxy","image":"envoy:1.30"}]}}}}"#,
            ),
            manifest(
                r#"{"kind":"CronJob","metadata":{"name":"report"},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"r","image":"report:7"}]}}}}}}"#,
            ),
            manifest(
                r#"{"kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#,
            ),
            manifest(r#"{"kind":"ConfigMap","metadata":{"name":"cfg"},"data":{"image":"not a workload"}}"#),
        ];
        let images = images_of(&ms);
        let shown: Vec<String> = images.iter().map(|(w, c, i)| format!("{w} {c} {i}")).collect();
        assert_eq!(
            shown,
            [
                "Deployment/web migrate web:2-migrate",
                "Deployment/web app web:2",
                "Deployment/web proxy envoy:1.30",
                "CronJob/report r report:7",
                "Pod/p c busybox"
            ]
        );
    }

    #[test]
    fn images_name_their_contexts_only_when_not_everywhere() {
        let img = |tag: &str| {
            vec![(
                "Deployment/web".to_string(),
                "app".to_string(),
                format!("web:{tag}"),
            )]
        };
        let per: BTreeMap<String, _> = [("east", img("2")), ("west", img("2")), ("south", img("1"))]
            .into_iter()
            .map(|(c, i)| (c.to_string(), i))
            .collect();
        let grouped = group_images(&per, 3);
        assert_eq!(grouped.len(), 2);
        assert_eq!(
            (grouped[0].image.as_str(), grouped[0].contexts.clone()),
            ("web:1", vec!["south".to_string()])
        );
        assert_eq!(
            (grouped[1].image.as_str(), grouped[1].contexts.clone()),
            ("web:2", vec!["east".to_string(), "west".to_string()])
        );
        let everywhere = group_images(&per.into_keys().map(|c| (c, img("3"))).collect(), 3);
        assert!(everywhere[0].contexts.is_empty());
    }

    #[test]
    fn values_are_kept_with_secrets_masked() {
        let text = "apiVersion: convoy.dev/v1\nkind: Release\nmetadata: {name: web.shop, namespace: shop}\nspec:\n  chart: {path: ./web}\n  values: {image: {tag: \"2.0\"}, dsn: \"postgres://u:canary-pw@db\"}\n  contexts: [east, west]\n  contextValues:\n    west: {replicas: 3}\n";
        let release = convoy_release::Release::parse_str(text, "web.yaml").unwrap();
        let secret = Value::String("canary-pw".into());
        let masker = convoy_release::mask::Masker::new([&secret]);
        let record = values_record(&release, &masker);
        assert_eq!(record.release["image"]["tag"], "2.0");
        let dsn = record.release["dsn"].as_str().unwrap();
        assert!(
            !dsn.contains("canary-pw") && dsn.starts_with("postgres://u:"),
            "{dsn}"
        );
        assert_eq!(record.contexts.keys().collect::<Vec<_>>(), ["west"]);
        assert_eq!(record.contexts["west"]["replicas"], 3);
    }
}
