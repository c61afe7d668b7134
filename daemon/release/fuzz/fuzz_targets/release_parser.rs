//! Any bytes into the release and registry parsers: errors are fine, panics are not, and
//! every error must carry a position.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match convoy_release::Release::parse_str(text, "fuzz.yaml") {
        Ok(release) => {
            // A release that parses must survive the later stages too.
            let contexts = release.targets().map(|name| convoy_release::Context {
                name: name.to_string(),
                region: "r".into(),
                env: "dev".into(),
                cloud: "c".into(),
                cluster_name: "k".into(),
                labels: Default::default(),
            });
            let Ok(registry) = convoy_release::Registry::from_contexts(contexts) else {
                return;
            };
            let _ = release.validate(&registry);
            let _ = convoy_release::plan_secrets(&release);
            let _ = release.waves();
            for ctx in registry.contexts() {
                let values = convoy_release::context_values(&release, ctx, &Default::default());
                assert!(values.is_object());
                let _ = convoy_release::values_digest(&release, ctx);
            }
        }
        Err(e) => {
            if let Some(diags) = e.diagnostics() {
                assert!(!diags.is_empty());
                for d in diags {
                    assert!(d.pos.line >= 1 && d.pos.col >= 1, "unpositioned: {d}");
                }
            }
        }
    }
    let _ = convoy_release::Registry::parse(text, "fuzz.yaml");
});
