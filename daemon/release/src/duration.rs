//! Durations as people write them in release files: `30s`, `10m`, `1h30m`, `500ms`.

use std::time::Duration;

/// Parses `<number><unit>` groups (units `ms`, `s`, `m`, `h`), or a bare `0`.
/// Returns what was expected on failure, for the caller to position.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a duration such as `30s`, `10m`, `1h30m` or `500ms`";
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(EXPECTED.into());
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("`{text}`: {EXPECTED}"));
        }
        let number: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let millis_per_unit: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(format!("`{text}`: missing unit; {EXPECTED}")),
            other => return Err(format!("`{text}`: unknown unit `{other}`; {EXPECTED}")),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(millis_per_unit)
            .and_then(|ms| total.checked_add(ms))
            .filter(|ms| *ms <= u128::from(u64::MAX))
            .ok_or_else(|| format!("`{text}`: duration too large"))?;
    }
    let millis = u64::try_from(total).map_err(|_| format!("`{text}`: duration too large"))?;
    Ok(Duration::from_millis(millis))
}

/// Formats a duration back in the same notation (`1h30m`, `45s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_garbage_with_the_expected_form() {
        for bad in [
            "",
            "10",
            "m",
            "10x",
            "1.5h",
            "-3s",
            "99999999999999999999999h",
            "1h 30m",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("duration") || e.contains("unit") || e.contains("large"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn round_trips() {
        for s in ["1h30m", "45s", "250ms", "2h", "1m1s1ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
