//! Time zones for `dateInZone`, `date` (Local) and friends, read from the system's TZif files
//! like Go's `time.LoadLocation`: `$ZONEINFO`, then `/usr/share/zoneinfo` and the other Unix
//! locations; `Local` is `/etc/localtime` (or `$TZ`). Instants after the last transition in
//! the file follow the POSIX TZ rule in its footer (RFC 8536).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::gotime::days_from_civil;

/// A loaded zone: transitions and the local-time types they switch to.
#[derive(Debug)]
pub(crate) struct Zone {
    transitions: Vec<(i64, usize)>,
    types: Vec<LocalType>,
    footer: Option<Posix>,
}

#[derive(Clone, Debug, PartialEq)]
struct LocalType {
    offset: i32,
    dst: bool,
    abbrev: String,
}

/// A POSIX TZ rule such as `CET-1CEST,M3.5.0,M10.5.0/3`.
#[derive(Clone, Debug, PartialEq)]
struct Posix {
    std: LocalType,
    dst: Option<(LocalType, Rule, Rule)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum RuleDate {
    /// `Mm.w.d`: day `d` (0 = Sunday) of week `w` (5 = last) of month `m`.
    Month(u32, u32, u32),
    /// `Jn`: day 1..=365, February 29 never counted.
    Julian(u32),
    /// `n`: day 0..=365, counting February 29.
    Zero(u32),
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Rule {
    date: RuleDate,
    /// Seconds after local midnight.
    time: i64,
}

static CACHE: OnceLock<Mutex<HashMap<String, Option<Arc<Zone>>>>> = OnceLock::new();

/// The zone called `name` (`UTC`, `Local`, `Europe/Berlin`); `None` when it does not exist,
/// which callers treat as UTC like sprig does.
pub(crate) fn load(name: &str) -> Option<Arc<Zone>> {
    if name.is_empty() || name == "UTC" {
        return None;
    }
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(z) = cache.lock().ok().and_then(|c| c.get(name).cloned()) {
        return z;
    }
    let zone = read_zone(name).map(Arc::new);
    if let Ok(mut c) = cache.lock() {
        c.insert(name.to_string(), zone.clone());
    }
    zone
}

fn read_zone(name: &str) -> Option<Zone> {
    if name == "Local" {
        if let Ok(tz) = std::env::var("TZ") {
            let tz = tz.trim_start_matches(':');
            return match tz {
                "" | "UTC" => None,
                other => read_zone(other),
            };
        }
        return parse_tzif(&std::fs::read("/etc/localtime").ok()?);
    }
    if name.contains("..") || name.starts_with(['/', '\\']) {
        return None;
    }
    let mut dirs: Vec<String> = Vec::new();
    if let Ok(dir) = std::env::var("ZONEINFO") {
        dirs.push(dir);
    }
    dirs.extend(
        [
            "/usr/share/zoneinfo",
            "/usr/share/lib/zoneinfo",
            "/usr/lib/locale/TZ",
            "/etc/zoneinfo",
        ]
        .map(String::from),
    );
    dirs.iter()
        .find_map(|d| std::fs::read(std::path::Path::new(d).join(name)).ok())
        .and_then(|data| parse_tzif(&data))
}

fn be_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn be_i64(b: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// Parses a TZif file, preferring the 64-bit (v2+) data block and its footer.
fn parse_tzif(data: &[u8]) -> Option<Zone> {
    let header = |d: &[u8]| -> Option<(u8, [usize; 6])> {
        if d.get(..4)? != b"TZif" {
            return None;
        }
        let version = *d.get(4)?;
        let mut counts = [0usize; 6];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = usize::try_from(be_i32(d.get(20 + i * 4..)?)?).ok()?;
        }
        Some((version, counts))
    };
    let (version, c1) = header(data)?;
    let [isut, isstd, leap, timecnt, typecnt, charcnt] = c1;
    let v1_len = timecnt * 5 + typecnt * 6 + charcnt + leap * 8 + isstd + isut;
    let (body, time_size, counts) = if version >= b'2' {
        let second = data.get(44 + v1_len..)?;
        let (_, c2) = header(second)?;
        (second.get(44..)?, 8, c2)
    } else {
        (data.get(44..)?, 4, c1)
    };
    let [isut, isstd, leap, timecnt, typecnt, charcnt] = counts;
    let mut pos = 0;
    let mut transitions = Vec::with_capacity(timecnt);
    let times = body.get(pos..pos + timecnt * time_size)?;
    pos += timecnt * time_size;
    let idx = body.get(pos..pos + timecnt)?;
    pos += timecnt;
    for i in 0..timecnt {
        let t = if time_size == 8 {
            be_i64(&times[i * 8..])?
        } else {
            i64::from(be_i32(&times[i * 4..])?)
        };
        transitions.push((t, usize::from(idx[i])));
    }
    let raw_types = body.get(pos..pos + typecnt * 6)?;
    pos += typecnt * 6;
    let chars = body.get(pos..pos + charcnt)?;
    pos += charcnt + leap * (time_size + 4) + isstd + isut;
    let mut types = Vec::with_capacity(typecnt);
    for t in raw_types.chunks(6) {
        let start = usize::from(t[5]);
        let end = chars
            .get(start..)?
            .iter()
            .position(|&c| c == 0)
            .map_or(chars.len(), |e| start + e);
        types.push(LocalType {
            offset: be_i32(t)?,
            dst: t[4] != 0,
            abbrev: String::from_utf8_lossy(chars.get(start..end)?).into_owned(),
        });
    }
    if types.is_empty() || transitions.iter().any(|(_, i)| *i >= types.len()) {
        return None;
    }
    let footer = if version >= b'2' {
        body.get(pos..)
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|f| f.trim_matches('\n').lines().next().map(str::to_string))
            .and_then(|f| parse_posix(&f))
    } else {
        None
    };
    Some(Zone {
        transitions,
        types,
        footer,
    })
}

impl Zone {
    /// The UTC offset (seconds) and abbreviation in effect at `utc`.
    pub(crate) fn at(&self, utc: i64) -> (i32, String) {
        let after_last = self.transitions.last().is_none_or(|(t, _)| utc >= *t);
        if let Some(footer) = &self.footer
            && after_last
        {
            let t = footer.at(utc);
            return (t.offset, t.abbrev);
        }
        let i = self.transitions.partition_point(|(t, _)| *t <= utc);
        let ty = if i == 0 {
            // Before the first transition: the first standard-time type, as Go does.
            self.types.iter().find(|t| !t.dst).unwrap_or(&self.types[0])
        } else {
            &self.types[self.transitions[i - 1].1]
        };
        (ty.offset, ty.abbrev.clone())
    }
}

/// Parses `[+-]hh[:mm[:ss]]` into seconds.
fn parse_hms(s: &str) -> Option<(i64, &str)> {
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    let mut total = 0i64;
    let mut rest = rest;
    for (i, unit) in [3600i64, 60, 1].iter().enumerate() {
        if i > 0 {
            match rest.strip_prefix(':') {
                Some(r) => rest = r,
                None => break,
            }
        }
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        total += rest[..n].parse::<i64>().ok()? * unit;
        rest = &rest[n..];
    }
    Some((sign * total, rest))
}

fn parse_name(s: &str) -> Option<(String, &str)> {
    if let Some(rest) = s.strip_prefix('<') {
        let end = rest.find('>')?;
        return Some((rest[..end].to_string(), &rest[end + 1..]));
    }
    let n = s.bytes().take_while(u8::is_ascii_alphabetic).count();
    if n < 3 {
        return None;
    }
    Some((s[..n].to_string(), &s[n..]))
}

fn parse_rule(s: &str) -> Option<(Rule, &str)> {
    let (date, rest) = if let Some(r) = s.strip_prefix('M') {
        let mut nums = [0u32; 3];
        let mut rest = r;
        for (i, n) in nums.iter_mut().enumerate() {
            if i > 0 {
                rest = rest.strip_prefix('.')?;
            }
            let len = rest.bytes().take_while(u8::is_ascii_digit).count();
            *n = rest.get(..len)?.parse().ok()?;
            rest = &rest[len..];
        }
        (RuleDate::Month(nums[0], nums[1], nums[2]), rest)
    } else if let Some(r) = s.strip_prefix('J') {
        let len = r.bytes().take_while(u8::is_ascii_digit).count();
        (RuleDate::Julian(r.get(..len)?.parse().ok()?), &r[len..])
    } else {
        let len = s.bytes().take_while(u8::is_ascii_digit).count();
        (RuleDate::Zero(s.get(..len)?.parse().ok()?), &s[len..])
    };
    let (time, rest) = match rest.strip_prefix('/') {
        Some(r) => parse_hms(r)?,
        None => (7200, rest),
    };
    Some((Rule { date, time }, rest))
}

/// Parses a POSIX TZ string (offsets are west-positive there, hence the negation).
fn parse_posix(s: &str) -> Option<Posix> {
    let (std_name, rest) = parse_name(s)?;
    let (std_off, rest) = parse_hms(rest)?;
    let std = LocalType {
        offset: i32::try_from(-std_off).ok()?,
        dst: false,
        abbrev: std_name,
    };
    if rest.is_empty() {
        return Some(Posix { std, dst: None });
    }
    let (dst_name, rest) = parse_name(rest)?;
    let (dst_off, rest) = match rest.as_bytes().first() {
        Some(b',') | None => (i64::from(std.offset) + 3600, rest),
        _ => {
            let (o, r) = parse_hms(rest)?;
            (-o, r)
        }
    };
    let rest = rest.strip_prefix(',')?;
    let (start, rest) = parse_rule(rest)?;
    let rest = rest.strip_prefix(',')?;
    let (end, _) = parse_rule(rest)?;
    let dst = LocalType {
        offset: i32::try_from(dst_off).ok()?,
        dst: true,
        abbrev: dst_name,
    };
    Some(Posix {
        std,
        dst: Some((dst, start, end)),
    })
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Local seconds since the epoch at which `rule` fires in `year` (before its time offset).
fn rule_day(year: i64, date: RuleDate) -> i64 {
    let jan1 = days_from_civil(year, 1, 1);
    match date {
        RuleDate::Julian(n) => {
            let mut d = i64::from(n.clamp(1, 365)) - 1;
            if is_leap(year) && d >= 59 {
                d += 1;
            }
            jan1 + d
        }
        RuleDate::Zero(n) => jan1 + i64::from(n.min(365)),
        RuleDate::Month(m, w, d) => {
            let m = m.clamp(1, 12);
            let first = days_from_civil(year, m, 1);
            let dow_first = (first + 4).rem_euclid(7);
            let mut day = (i64::from(d) - dow_first).rem_euclid(7) + (i64::from(w.clamp(1, 5)) - 1) * 7;
            let next = if m == 12 {
                days_from_civil(year + 1, 1, 1)
            } else {
                days_from_civil(year, m + 1, 1)
            };
            while first + day >= next {
                day -= 7;
            }
            first + day
        }
    }
}

impl Posix {
    fn at(&self, utc: i64) -> LocalType {
        let Some((dst, start, end)) = &self.dst else {
            return self.std.clone();
        };
        // Beyond ~30,000 years the rule arithmetic would overflow; standard time is as good.
        if utc.unsigned_abs() > 1_000_000_000_000 {
            return self.std.clone();
        }
        let local = utc + i64::from(self.std.offset);
        let (year, _, _) = super::gotime::civil_from_days(local.div_euclid(86_400));
        let start_utc = rule_day(year, start.date) * 86_400 + start.time - i64::from(self.std.offset);
        let end_utc = rule_day(year, end.date) * 86_400 + end.time - i64::from(dst.offset);
        let in_dst = if start_utc < end_utc {
            utc >= start_utc && utc < end_utc
        } else {
            utc < end_utc || utc >= start_utc
        };
        if in_dst { dst.clone() } else { self.std.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_rules_switch_on_the_right_days() {
        let p = parse_posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 2019-06-13T20:39:39Z is summer time in Berlin.
        assert_eq!(p.at(1_560_458_379).offset, 7200);
        assert_eq!(p.at(1_560_458_379).abbrev, "CEST");
        // 2019-01-10 is winter.
        assert_eq!(p.at(1_547_078_400).offset, 3600);
        // DST starts 2019-03-31 01:00 UTC.
        assert_eq!(p.at(1_553_994_000 - 1).abbrev, "CET");
        assert_eq!(p.at(1_553_994_000).abbrev, "CEST");
        let ny = parse_posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        assert_eq!(ny.at(1_560_458_379).offset, -4 * 3600);
        let fixed = parse_posix("<+03>-3").unwrap();
        assert_eq!(fixed.at(0).offset, 3 * 3600);
        assert_eq!(fixed.at(0).abbrev, "+03");
        assert!(parse_posix("X").is_none());
    }

    #[test]
    fn loads_system_zones_or_reports_them_missing() {
        assert!(load("UTC").is_none());
        assert!(load("../../etc/passwd").is_none());
        assert!(load("No/Such_Zone").is_none());
        // The build machine has tzdata; if it did not, LoadLocation would fail in Go too.
        if std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
            let z = load("Europe/Berlin").unwrap();
            assert_eq!(z.at(1_560_458_379), (7200, "CEST".to_string()));
            assert_eq!(z.at(1_547_078_400), (3600, "CET".to_string()));
            assert_eq!(
                z.at(4_102_444_800 + 180 * 86_400).0,
                7200,
                "2100 summer via footer"
            );
        }
        assert!(parse_tzif(b"TZif2 garbage").is_none());
        assert!(parse_tzif(b"").is_none());
    }
}
