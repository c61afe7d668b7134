//! Fuzzes the YAML-to-JSON conversion charts' values go through (`values.yaml`, `-f`
//! files, `fromYaml`): arbitrary text through `yaml_to_json` and `parse_values`. Any
//! panic, abort or hang (anchors, deep nesting, YAML 1.1 scalars) is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = convoy_chart::values::yaml_to_json(&text, "fuzz.yaml");
    let _ = convoy_chart::values::parse_values(&text, "fuzz.yaml");
});
