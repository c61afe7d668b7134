//! Date functions (sprig `date.go`). A time travels as the text of Go's `Time.String()`
//! (see [`super::gotime`]); like sprig, `date`-style functions also take Unix seconds and
//! treat anything else as "now".

use crate::tmpl::{FuncMap, Value};

use super::add;
use super::conv::{arity, call_error, str_arg, string};
use super::gotime::{GoTime, duration_string, parse_duration};

const TIME_STRING_LAYOUT: &str = "2006-01-02 15:04:05.999999999 -0700 MST";

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "now", |a| {
        arity("now", a, 0, 0)?;
        Ok(time_value(&GoTime::now()))
    });
    add(m, "date", |a| {
        arity("date", a, 2, 2)?;
        let layout = str_arg("date", &a[0])?;
        Ok(string(to_time(&a[1]).in_zone("Local").format(layout)))
    });
    for name in ["dateInZone", "date_in_zone"] {
        add(m, name, move |a| {
            arity(name, a, 3, 3)?;
            let layout = str_arg(name, &a[0])?;
            let zone = str_arg(name, &a[2])?;
            Ok(string(to_time(&a[1]).in_zone(zone).format(layout)))
        });
    }
    add(m, "htmlDate", |a| {
        arity("htmlDate", a, 1, 1)?;
        Ok(string(to_time(&a[0]).in_zone("Local").format("2006-01-02")))
    });
    add(m, "htmlDateInZone", |a| {
        arity("htmlDateInZone", a, 2, 2)?;
        let zone = str_arg("htmlDateInZone", &a[1])?;
        Ok(string(to_time(&a[0]).in_zone(zone).format("2006-01-02")))
    });
    for (name, must) in [
        ("dateModify", false),
        ("date_modify", false),
        ("mustDateModify", true),
        ("must_date_modify", true),
    ] {
        add(m, name, move |a| {
            arity(name, a, 2, 2)?;
            let spec = str_arg(name, &a[0])?;
            let t = time_arg(name, &a[1])?;
            match parse_duration(spec) {
                Ok(d) => Ok(time_value(&t.add_nanos(d))),
                Err(e) if must => Err(call_error(name, e)),
                Err(_) => Ok(time_value(&t)),
            }
        });
    }
    add(m, "ago", |a| {
        arity("ago", a, 1, 1)?;
        let t = time_arg("ago", &a[0])?;
        let now = GoTime::now();
        let elapsed = (i128::from(now.secs) - i128::from(t.secs)) * 1_000_000_000 + i128::from(now.nanos)
            - i128::from(t.nanos);
        // Rounded to the second, half away from zero, as Duration.Round does.
        let rounded = (elapsed + elapsed.signum() * 500_000_000) / 1_000_000_000 * 1_000_000_000;
        Ok(string(duration_string(rounded)))
    });
    add(m, "duration", |a| {
        arity("duration", a, 1, 1)?;
        let secs: i64 = match &a[0] {
            Value::String(s) => s.parse().unwrap_or(0),
            Value::Int(i) => *i,
            _ => 0,
        };
        Ok(string(duration_string(i128::from(secs) * 1_000_000_000)))
    });
    add(m, "durationRound", |a| {
        arity("durationRound", a, 1, 1)?;
        let d: i128 = match &a[0] {
            Value::String(s) => match GoTime::parse(TIME_STRING_LAYOUT, s) {
                Ok(t) => {
                    let now = GoTime::now();
                    (i128::from(now.secs) - i128::from(t.secs)) * 1_000_000_000
                }
                Err(_) => parse_duration(s).unwrap_or(0),
            },
            Value::Int(i) => i128::from(*i),
            _ => 0,
        };
        Ok(string(duration_round(d)))
    });
    for (name, must) in [("toDate", false), ("mustToDate", true)] {
        add(m, name, move |a| {
            arity(name, a, 2, 2)?;
            let layout = str_arg(name, &a[0])?;
            let value = str_arg(name, &a[1])?;
            match GoTime::parse(layout, value) {
                Ok(t) => Ok(time_value(&t)),
                Err(e) if must => Err(call_error(name, e)),
                Err(_) => Ok(time_value(&zero_time())),
            }
        });
    }
    add(m, "unixEpoch", |a| {
        arity("unixEpoch", a, 1, 1)?;
        Ok(string(time_arg("unixEpoch", &a[0])?.secs.to_string()))
    });
}

fn zero_time() -> GoTime {
    GoTime::parse("2006-01-02", "0001-01-01").unwrap_or_else(|_| GoTime::utc(0, 0))
}

fn time_value(t: &GoTime) -> Value {
    string(t.go_string())
}

/// sprig's conversion for `date`-style arguments: a time, Unix seconds, else now.
fn to_time(v: &Value) -> GoTime {
    match v {
        Value::String(s) => GoTime::parse(TIME_STRING_LAYOUT, s).unwrap_or_else(|_| GoTime::now()),
        Value::Int(i) => GoTime::utc(*i, 0).in_zone("Local"),
        _ => GoTime::now(),
    }
}

/// A `time.Time` parameter: only a time (as produced by `now`, `toDate`, ...) is accepted.
fn time_arg(func: &str, v: &Value) -> crate::tmpl::Result<GoTime> {
    match v {
        Value::String(s) => GoTime::parse(TIME_STRING_LAYOUT, s).map_err(|_| {
            call_error(
                func,
                format!("wrong type for value; expected time.Time; got string {s:?}"),
            )
        }),
        Value::Int(i) => Ok(GoTime::utc(*i, 0)),
        other => Err(call_error(
            func,
            format!(
                "wrong type for value; expected time.Time; got {}",
                other.type_name()
            ),
        )),
    }
}

/// sprig's `durationRound`: the largest whole unit (y, mo, d, h, m, s).
fn duration_round(d: i128) -> String {
    let u = d.unsigned_abs();
    const SECOND: u128 = 1_000_000_000;
    let units = [
        (SECOND * 3600 * 24 * 365, "y"),
        (SECOND * 3600 * 24 * 30, "mo"),
        (SECOND * 3600 * 24, "d"),
        (SECOND * 3600, "h"),
        (SECOND * 60, "m"),
        (SECOND, "s"),
    ];
    for (size, suffix) in units {
        if u > size {
            return format!("{}{suffix}", u / size);
        }
    }
    "0s".into()
}

/// go-yaml v2 resolves a plain scalar that starts with `YYYY-` and parses with one of its
/// timestamp layouts as a timestamp (so `toYaml` must quote such strings).
pub(crate) fn is_yaml_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    const LAYOUTS: [&str; 4] = [
        "2006-1-2T15:4:5.999999999Z07:00",
        "2006-1-2t15:4:5.999999999Z07:00",
        "2006-1-2 15:4:5.999999999",
        "2006-1-2",
    ];
    LAYOUTS.iter().any(|layout| GoTime::parse(layout, s).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_round_picks_the_largest_unit() {
        let s = 1_000_000_000i128;
        assert_eq!(duration_round(2 * 3600 * s + 5 * s), "2h");
        assert_eq!(duration_round(24 * 3600 * s + 5 * s), "1d");
        assert_eq!(duration_round(2400 * 3600 * s + 5 * s), "3mo");
        assert_eq!(duration_round(0), "0s");
    }

    #[test]
    fn yaml_timestamps_are_recognised() {
        assert!(is_yaml_timestamp("2020-01-01"));
        assert!(is_yaml_timestamp("2020-1-1"));
        assert!(is_yaml_timestamp("2001-12-14t21:59:43.10-05:00"));
        assert!(!is_yaml_timestamp("2020-13-01"));
        assert!(!is_yaml_timestamp("12-01"));
    }

    #[test]
    fn values_convert_to_times() {
        assert_eq!(to_time(&Value::Int(0)).format("2006-01-02"), "1970-01-01");
        let t = GoTime::utc(1_560_458_379, 0);
        assert_eq!(to_time(&time_value(&t)), t);
        assert!(time_arg("t", &Value::Float(1.0)).is_err());
    }
}
