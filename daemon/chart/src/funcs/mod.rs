//! The template function library: sprig v3.3.0 as Helm exposes it, plus Helm's context-free
//! functions (`toYaml`, `fromJson`, `toToml`, ...).
//!
//! ```text
//! function_map() ── strings, lists, dicts, defaults, math, encoding, crypto, certs, random,
//!                   dates (gotime + tz), semver, regex, reflect, paths, serial (yaml, yaml_read)
//! ```
//!
//! Functions that need the render context (`include`, `tpl`, `required`, `lookup`, `.Files`)
//! are added by the chart engine on top of [`function_map`]. Each module registers one family
//! of functions; the shared conversions (Go formatting, Go's strict argument types, `cast`'s
//! lenient numbers) live in `conv`. The crate-level helpers the engine also needs are
//! re-exported here: [`to_yaml_string`] (Helm's YAML writer), [`parse_yaml`] (Helm's YAML
//! reader), [`go_string`] (Go's `%v`), [`Version`]/[`Constraints`] (Masterminds/semver rules).
//!
//! Maps are references, as in Go ([`crate::tmpl::Map`]): `set`, `unset` and the `merge`
//! family change the dict they are given and return it, `deepCopy` makes new maps all the
//! way down, and every other function builds new dicts and lists (`dict`, `pick`, `omit`,
//! `append`, ...) or only reads (`get`, `dig`, `hasKey`, `keys`, ...).
//!
//! Behaviour is checked against the Go originals (see `tests/function_vectors/README.md`).
//! Known differences, all consequences of the template value model rather than choices:
//! - strings are UTF-8, so functions Go applies byte by byte (`trunc`, `substr`, `abbrev`,
//!   `nospace`, `initials`, `b64dec` of binary data) cut or decode at character boundaries;
//! - there is no nil list: where sprig returns a nil slice the result is an empty list;
//! - a dict that holds itself (`set $d "self" $d`) is an error ("nests deeper than 512
//!   levels") for the functions that walk whole values (`toJson`, `toYaml`, `merge`,
//!   `deepCopy`, comparing two such dicts in `deepEqual` or `has`, ...), where Go reports
//!   the cycle in other words or recurses until it crashes;
//! - generated keys are ECDSA P-256 where sprig makes RSA (see `certs`).

mod certs;
mod conv;
mod crypto;
mod dates;
mod defaults;
mod dicts;
mod encoding;
mod gotime;
mod lists;
mod math;
#[cfg(test)]
mod oracle_tests;
mod paths;
mod random;
mod reflect;
mod regex;
mod semver;
pub(crate) mod serial;
mod strings;
mod tz;
mod yaml;
pub(crate) mod yaml_read;

use std::sync::Arc;

use crate::tmpl::{FuncMap, Value};

pub use conv::{format_float_g, format_float_json, go_string};
pub use semver::{Constraints, Version};
pub use yaml::to_yaml_string;
pub use yaml_read::parse_yaml;

/// Every sprig function Helm keeps (all but `env` and `expandenv`) and Helm's own
/// context-free functions. Helm's functions replace sprig's of the same name (`toJson`).
pub fn function_map() -> FuncMap {
    let mut m = FuncMap::new();
    strings::register(&mut m);
    lists::register(&mut m);
    dicts::register(&mut m);
    defaults::register(&mut m);
    math::register(&mut m);
    encoding::register(&mut m);
    crypto::register(&mut m);
    certs::register(&mut m);
    random::register(&mut m);
    dates::register(&mut m);
    semver::register(&mut m);
    regex::register(&mut m);
    reflect::register(&mut m);
    paths::register(&mut m);
    serial::register(&mut m);
    m
}

/// Registers one function under `name`.
pub(crate) fn add(
    m: &mut FuncMap,
    name: &str,
    f: impl Fn(&[Value]) -> crate::tmpl::Result<Value> + Send + Sync + 'static,
) {
    m.insert(name.to_string(), Arc::new(f));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function of sprig v3.3.0's `TxtFuncMap` except `env` and `expandenv`.
    const SPRIG: &str = "hello ago date date_in_zone date_modify dateInZone dateModify duration \
        durationRound htmlDate htmlDateInZone must_date_modify mustDateModify mustToDate now toDate \
        unixEpoch abbrev abbrevboth trunc trim upper lower title untitle substr repeat trimall \
        trimAll trimSuffix trimPrefix nospace initials randAlphaNum randAlpha randAscii randNumeric \
        swapcase shuffle snakecase camelcase kebabcase wrap wrapWith contains hasPrefix hasSuffix \
        quote squote cat indent nindent replace plural sha1sum sha256sum sha512sum adler32sum \
        toString atoi int64 int float64 seq toDecimal split splitList splitn toStrings until \
        untilStep add1 add sub div mod mul randInt add1f addf subf divf mulf biggest max min maxf \
        minf ceil floor round join sortAlpha default empty coalesce all any compact mustCompact \
        fromJson toJson toPrettyJson toRawJson mustFromJson mustToJson mustToPrettyJson \
        mustToRawJson ternary deepCopy mustDeepCopy typeOf typeIs typeIsLike kindOf kindIs \
        deepEqual getHostByName base dir clean ext isAbs osBase osClean osDir osExt osIsAbs b64enc \
        b64dec b32enc b32dec tuple list dict get set unset hasKey pluck keys pick omit merge \
        mergeOverwrite mustMerge mustMergeOverwrite values append push mustAppend mustPush prepend \
        mustPrepend first mustFirst rest mustRest last mustLast initial mustInitial reverse \
        mustReverse uniq mustUniq without mustWithout has mustHas slice mustSlice concat dig chunk \
        mustChunk bcrypt htpasswd genPrivateKey derivePassword buildCustomCert genCA genCAWithKey \
        genSelfSignedCert genSelfSignedCertWithKey genSignedCert genSignedCertWithKey encryptAES \
        decryptAES randBytes uuidv4 semver semverCompare fail regexMatch mustRegexMatch \
        regexFindAll mustRegexFindAll regexFind mustRegexFind regexReplaceAll mustRegexReplaceAll \
        regexReplaceAllLiteral mustRegexReplaceAllLiteral regexSplit mustRegexSplit regexQuoteMeta \
        urlParse urlJoin";
    const HELM: &str = "toToml fromToml toYaml mustToYaml toYamlPretty fromYaml fromYamlArray toJson \
        mustToJson fromJson fromJsonArray";

    fn run(tpl: &str) -> Result<String, String> {
        run_with(tpl, &Value::Nil)
    }

    fn run_with(tpl: &str, data: &Value) -> Result<String, String> {
        crate::tmpl::render_for_test(tpl, data, &function_map())
    }

    fn ok(tpl: &str) -> String {
        run(tpl).unwrap_or_else(|e| panic!("{tpl}: {e}"))
    }

    #[test]
    fn exposes_every_helm_function_and_nothing_helm_removes() {
        let m = function_map();
        for name in SPRIG.split_whitespace().chain(HELM.split_whitespace()) {
            assert!(m.contains_key(name), "missing {name}");
        }
        assert!(!m.contains_key("env") && !m.contains_key("expandenv"));
        for builtin in [
            "and", "or", "not", "len", "index", "print", "printf", "eq", "html",
        ] {
            assert!(
                !m.contains_key(builtin),
                "{builtin} must stay the executor's builtin"
            );
        }
    }

    #[test]
    fn default_uses_go_zero_values() {
        assert_eq!(
            ok(r#"{{ 0 | default "d" }}|{{ false | default "d" }}|{{ list | default "d" }}"#),
            "d|d|d"
        );
        assert_eq!(
            ok(r#"{{ dict | default "d" }}|{{ "x" | default "d" }}|{{ 0.5 | default "d" }}"#),
            "d|x|0.5"
        );
        assert_eq!(
            ok(r#"{{ ternary "a" "b" true }}{{ false | ternary "a" "b" }}"#),
            "ab"
        );
        assert!(run(r#"{{ ternary "a" "b" 1 }}"#).is_err(), "ternary needs a bool");
    }

    #[test]
    fn strings_lists_and_encodings() {
        assert_eq!(ok(r#"{{ splitList "," "a,,b" | join "|" }}"#), "a||b");
        assert_eq!(
            ok(r#"{{ "hello" | b64enc }} {{ "aGVsbG8=" | b64dec }}"#),
            "aGVsbG8= hello"
        );
        assert_eq!(ok(r#"{{ "hello" | b32enc }}"#), "NBSWY3DP");
        assert_eq!(
            ok(r#"{{ "" | sha256sum }}"#),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(ok(r#"{{ until 3 }} {{ seq 2 }}"#), "[0 1 2] 1 2");
        assert_eq!(ok(r#"{{ "abcdef" | trunc -2 }}"#), "ef");
        assert!(
            run(r#"{{ upper 1 }}"#)
                .unwrap_err()
                .contains("expected string; got int")
        );
    }

    #[test]
    fn dicts_merge_deeply() {
        let out = ok(
            r#"{{ $a := dict "x" (dict "y" 1 "z" 2) }}{{ $b := dict "x" (dict "y" 9 "w" 3) "v" 4 }}{{ merge $a $b | toJson }} {{ mergeOverwrite $a $b | toJson }}"#,
        );
        assert_eq!(
            out,
            r#"{"v":4,"x":{"w":3,"y":1,"z":2}} {"v":4,"x":{"w":3,"y":9,"z":2}}"#
        );
        assert_eq!(
            ok(r#"{{ $d := dict "a" 1 }}{{ $d = set $d "b" 2 }}{{ $d | toJson }}"#),
            r#"{"a":1,"b":2}"#
        );
    }

    #[test]
    fn maps_are_references_as_in_go() {
        assert_eq!(
            ok(r#"{{ $d := dict "k" 1 }}{{ $_ := set $d "k" 2 }}{{ $d.k }}"#),
            "2"
        );
        assert_eq!(
            ok(r#"{{ $d := dict "a" 1 }}{{ $_ := unset $d "a" }}{{ len $d }}"#),
            "0"
        );
        assert_eq!(
            ok(r#"{{ $a := dict "x" 1 }}{{ $_ := merge $a (dict "y" 2) }}{{ $a | toJson }}"#),
            r#"{"x":1,"y":2}"#
        );
        assert_eq!(
            ok(r#"{{ $a := dict "x" 1 "y" 1 }}{{ $_ := mergeOverwrite $a (dict "y" 2) }}{{ $a | toJson }}"#),
            r#"{"x":1,"y":2}"#
        );
        assert_eq!(
            ok(
                r#"{{ $a := dict "x" (dict "y" 1) }}{{ $b := deepCopy $a }}{{ $_ := set $b.x "y" 2 }}{{ $a.x.y }}"#
            ),
            "1"
        );
        assert_eq!(
            ok(r#"{{ $l := list 1 }}{{ $m := append $l 2 }}{{ len $l }}"#),
            "1"
        );
        // A map held in two places is one map; `dict`, `pick` and `omit` build new ones.
        assert_eq!(
            ok(r#"{{ $i := dict }}{{ $o := dict "i" $i }}{{ $_ := set $i "k" 1 }}{{ $o | toJson }}"#),
            r#"{"i":{"k":1}}"#
        );
        assert_eq!(
            ok(
                r#"{{ $d := dict "a" 1 "b" 2 }}{{ $p := pick $d "a" }}{{ $q := omit $d "a" }}{{ $_ := set $p "a" 9 }}{{ $_ := set $q "b" 9 }}{{ $d | toJson }}"#
            ),
            r#"{"a":1,"b":2}"#
        );
        assert_eq!(
            ok(r#"{{ $y := fromYaml "a: &x {k: 1}\nb: *x" }}{{ $_ := set $y.b "k" 2 }}{{ $y.a.k }}"#),
            "1",
            "YAML aliases are copies, as after Helm's JSON round trip"
        );
    }

    #[test]
    fn cyclic_maps_fail_cleanly() {
        let cycle = r#"{{ $d := dict "v" 1 }}{{ $_ := set $d "self" $d }}"#;
        assert_eq!(ok(&format!("{cycle}{{{{ $d | toJson }}}}")), "");
        assert!(run(&format!("{cycle}{{{{ $d | mustToJson }}}}")).is_err());
        assert!(run(&format!("{cycle}{{{{ deepCopy $d }}}}")).is_err());
        assert!(run(&format!("{cycle}{{{{ merge $d $d }}}}")).is_err());
        assert_eq!(ok(&format!("{cycle}{{{{ $d.self.self.v }}}}")), "1");
        assert_eq!(
            ok(r#"{{ $d := dict "a" (dict "b" 1) }}{{ $_ := merge $d $d }}{{ $d | toJson }}"#),
            r#"{"a":{"b":1}}"#
        );
    }

    #[test]
    fn yaml_round_trips_through_helm_semantics() {
        let out = ok(r#"{{ "a: yes\nb: '1.0'\nc: 1000000\nd: [x, {e: f}]\n" | fromYaml | toYaml }}"#);
        assert_eq!(out, "a: true\nb: \"1.0\"\nc: 1000000\nd:\n- x\n- e: f");
        assert!(ok(r#"{{ fromYaml "- a" | toJson }}"#).starts_with(r#"{"Error":"#));
    }

    #[test]
    fn semver_regex_and_dates() {
        assert_eq!(ok(r#"{{ semverCompare ">=1.20.0-0" "v1.21.3" }}"#), "true");
        assert_eq!(ok(r#"{{ (semver "2.3.4-rc.1").Prerelease }}"#), "rc.1");
        assert_eq!(
            ok(r#"{{ (semver "v2.3").Major }}.{{ (semver "v2.3").Minor }}"#),
            "2.3"
        );
        assert_eq!(
            ok(r#"{{ semver "v2.3" }} {{ (semver "v2.3").Original }} {{ semver "1.2.3+b" | toJson }}"#),
            r#"2.3.0 v2.3 "1.2.3+b""#
        );
        assert_eq!(
            ok(r#"{{ (semver "1.2.3").LessThan (semver "1.10.0") }} {{ (semver "1.2.3").IncMinor }}"#),
            "true 1.3.0"
        );
        assert_eq!(ok(r#"{{ regexReplaceAll "(a+)" "caaat" "<${1}>" }}"#), "c<aaa>t");
        assert_eq!(ok(r#"{{ regexMatch "^\\d+$" "١٢" }}"#), "false");
        assert_eq!(
            ok(r#"{{ 1560458379 | date "Mon Jan _2 15:04:05 2006" }}"#),
            "Thu Jun 13 20:39:39 2019"
        );
        assert_eq!(
            ok(r#"{{ toDate "2006-01-02" "2024-02-29" | dateModify "24h" | date "2006-01-02" }}"#),
            "2024-03-01"
        );
        let now = ok(r#"{{ now | date "2006" }}"#);
        assert!(now.len() == 4 && now.as_str() >= "2024", "{now}");
    }

    #[test]
    fn hostile_inputs_fail_cleanly() {
        assert!(run(r#"{{ indent 60000000 "a\nb\nc" }}"#).is_err());
        assert!(run(r#"{{ repeat 100000000 "abc" }}"#).is_err());
        assert!(run(r#"{{ until 100000000000 }}"#).is_err());
        let deep = r#"{{ $d := dict }}{{ range until 600 }}{{ $d = dict "a" $d }}{{ end }}"#;
        assert!(run(&format!("{deep}{{{{ $d | mustToYaml }}}}")).is_err());
        assert!(run(&format!("{deep}{{{{ $d | mustToJson }}}}")).is_err());
        assert_eq!(ok(&format!("{deep}{{{{ $d | toYaml }}}}")), "");
        assert!(!ok(r#"{{ date "2006" 9223372036854775807 }}"#).is_empty());
        assert!(run(r#"{{ regexFind "(" "x" }}"#).is_err());
        assert_eq!(ok(r#"{{ regexMatch "(" "x" }}"#), "false");
    }

    #[test]
    fn random_and_crypto_functions_have_the_right_shape() {
        let s = ok(r#"{{ randAlphaNum 12 }}"#);
        assert!(s.len() == 12 && s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(ok(r#"{{ uuidv4 | len }}"#), "36");
        // base64 of 12 random bytes (b64dec cannot give them back as-is: strings are UTF-8).
        assert_eq!(ok(r#"{{ randBytes 12 | len }}"#), "16");
        assert_eq!(
            ok(r#"{{ "s3cret" | encryptAES "k" | decryptAES "k" }}"#),
            "s3cret"
        );
        let ca = ok(
            r#"{{ $ca := genCA "ca" 3650 }}{{ $c := genSignedCert "x" nil (list "x") 30 $ca }}{{ $c.Cert }}"#,
        );
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
