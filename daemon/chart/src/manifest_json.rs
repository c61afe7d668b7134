//! Rendered manifests as Kubernetes receives them from Helm: YAML 1.1 to JSON.
//!
//! Helm never sends its rendered text to the API server. It reads each document with
//! `sigs.k8s.io/yaml.YAMLToJSON` (go-yaml v2, YAML 1.1) and sends the JSON. A reader of
//! YAML 1.2 (serde_yaml, in the agent) disagrees on exactly the scalars charts use every
//! day: `defaultMode: 0644` is 420 to Helm and 644 to YAML 1.2 (out of range for the API
//! server), `hostNetwork: yes` is `true` to Helm and the string "yes" to YAML 1.2. Shipping
//! the JSON that Helm would have produced removes the question: JSON reads the same in
//! every YAML version.
//!
//! What `YAMLToJSON` does and this reproduces (with the resolver the values reader uses,
//! [`crate::funcs::yaml_read`]): YAML 1.1 booleans, octal (`0644`), `0x`/`0b`, `1_000`;
//! integers stay integers (up to `u64`), other numbers are float64 printed as Go's
//! `encoding/json` prints them (`1.0` is `1`, `1e21` is `1e+21`); `.inf` and `.nan` are
//! errors (JSON has no such numbers); quoted scalars, block scalars and custom tags are
//! strings; timestamps stay text; `!!binary` is decoded; merge keys (`<<`) are applied; map
//! keys become strings (`yes:` is `"true"`), a null key is an error; keys are sorted.

use crate::error::{ChartError, Result};
use crate::funcs::yaml_read::{self, Numbers};
use crate::tmpl::Value;

/// Converts one rendered YAML document to compact JSON, as Helm's `YAMLToJSON` does.
///
/// An empty document is `null`, as in Helm. More than one document is an error rather
/// than Helm's silent "first one wins": a caller with a stream (a `crds/` file) uses
/// [`manifest_documents_to_json`]. The error says what is wrong and where (line of the
/// document); the caller adds which template it came from.
pub fn manifest_to_json(text: &str) -> Result<String> {
    let docs = yaml_read::parse_documents(text, Numbers::Typed).map_err(ChartError::ManifestJson)?;
    match docs.as_slice() {
        [] => Ok("null".to_string()),
        [doc] => to_json(doc),
        more => Err(ChartError::ManifestJson(format!(
            "expected one YAML document, found {}",
            more.len()
        ))),
    }
}

/// Converts every document of a rendered text (a template's output, or a `crds/` file
/// holding several objects) to compact JSON, one string per object. Empty and null
/// documents are left out: Helm applies nothing for them either. Error lines count from
/// the start of `text`, so they point into the file even past its first document.
pub fn manifest_documents_to_json(text: &str) -> Result<Vec<String>> {
    yaml_read::parse_documents(text, Numbers::Typed)
        .map_err(ChartError::ManifestJson)?
        .iter()
        .filter(|d| !matches!(d, Value::Nil))
        .map(to_json)
        .collect()
}

/// Go's `json.Marshal`, shared with the `toJson` template function: keys sorted, `<`, `>`
/// and `&` escaped as Go escapes them, floats in Go's text (`1.0` is `1`, `1e21` is `1e+21`),
/// so Kubernetes' decoder sees integers where Helm's sees them.
fn to_json(v: &Value) -> Result<String> {
    crate::funcs::serial::to_json(v, true, false).map_err(ChartError::ManifestJson)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> String {
        manifest_to_json(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn yaml_1_1_scalars_become_what_helm_sends() {
        assert_eq!(
            json("defaultMode: 0644\nhostNetwork: yes\nquoted: \"0644\"\nsingle: 'yes'\noff: Off\n"),
            r#"{"defaultMode":420,"false":false,"hostNetwork":true,"quoted":"0644","single":"yes"}"#
        );
        assert_eq!(
            json("a: 1_000\nb: 0x1F\nc: 0b101\nd: -0o17\ne: +12\n"),
            r#"{"a":1000,"b":31,"c":5,"d":-15,"e":12}"#,
            "go-yaml parses with Go's ParseInt, which knows 0o"
        );
        assert_eq!(
            json("a: ~\nb: null\nc:\nd: !!str 12\ne: !custom 12\nf: 2024-01-02\ng: !!float 3\n"),
            r#"{"a":null,"b":null,"c":null,"d":"12","e":"12","f":"2024-01-02","g":3}"#
        );
    }

    #[test]
    fn integers_stay_integers_and_floats_print_as_go_does() {
        assert_eq!(
            json(
                "a: 1.0\nb: 1.5\nc: 1e3\nd: 0.0000001\ne: 1e21\nf: 100000000000000000000\ng: -0.5\nh: 0.000001\n"
            ),
            r#"{"a":1,"b":1.5,"c":1000,"d":1e-7,"e":1e+21,"f":100000000000000000000,"g":-0.5,"h":0.000001}"#
        );
        assert_eq!(
            json("big: 9223372036854775807\nbigger: 18446744073709551615\nneg: -9223372036854775808\n"),
            r#"{"big":9223372036854775807,"bigger":18446744073709551615,"neg":-9223372036854775808}"#
        );
        assert_eq!(
            json("x: 99999999999999999999\n"),
            r#"{"x":100000000000000000000}"#
        );
    }

    #[test]
    fn structure_strings_and_merge_keys() {
        let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  labels: {b: \"2\", a: '1'}\n\
                   data:\n  script: |\n    #!/bin/sh\n    echo \"hi\"\\t\n  folded: >-\n    one\n    two\n\
                   list:\n  - [1, yes, \"x\"]\n  - {k: v}\n  - []\n  - {}\n\
                   base: &b {x: 1, z: 2}\nderived:\n  <<: *b\n  z: 3\n";
        assert_eq!(
            json(doc),
            r##"{"apiVersion":"v1","base":{"x":1,"z":2},"data":{"folded":"one two","script":"#!/bin/sh\necho \"hi\"\\t\n"},"derived":{"x":1,"z":3},"kind":"ConfigMap","list":[[1,true,"x"],{"k":"v"},[],{}],"metadata":{"labels":{"a":"1","b":"2"},"name":"cm"}}"##
        );
        assert_eq!(json("s: \"tab\\there\\u0001\"\n"), r#"{"s":"tab\there\u0001"}"#);
        assert_eq!(json(""), "null");
        assert_eq!(json("# only a comment\n"), "null");
    }

    #[test]
    fn what_json_cannot_hold_is_an_error_with_its_line() {
        for (doc, words) in [
            ("a: 1\nb: .inf\n", "line 2: json: unsupported value: +Inf"),
            ("a: -.inf\n", "unsupported value: -Inf"),
            ("a: .nan\n", "unsupported value: NaN"),
            ("~: 1\n", "unsupported map key"),
            ("a: [1, 2\n", "line"),
            ("a: *nope\n", "unknown anchor"),
            ("a: !!int abc\n", "cannot decode !!str `abc` as a !!int"),
            ("a:\n  <<: 1\n", "map merge requires map or sequence of maps"),
            ("a: 1\n---\nb: 2\n", "expected one YAML document, found 2"),
        ] {
            let err = manifest_to_json(doc).expect_err(doc).to_string();
            assert!(err.contains(words), "{doc:?}: {err}");
        }
    }

    #[test]
    fn streams_give_one_json_object_per_document() {
        let docs =
            manifest_documents_to_json("---\na: 0644\n---\n# nothing\n---\n~\n---\nb: [on]\n").unwrap();
        assert_eq!(docs, [r#"{"a":420}"#, r#"{"b":[true]}"#]);
        let err = manifest_documents_to_json("a: 1\n---\nb: .inf\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("+Inf"), "{err}");
        let docs = manifest_documents_to_json("a: &x {k: 1}\nb: *x\n---\nc: 1\n").unwrap();
        assert_eq!(docs, [r#"{"a":{"k":1},"b":{"k":1}}"#, r#"{"c":1}"#]);
        let err = manifest_documents_to_json("a: &x 1\n---\nb: *x\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown anchor"),
            "anchors end with their document: {err}"
        );
        assert!(manifest_documents_to_json("").unwrap().is_empty());
    }
}
