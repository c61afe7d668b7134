//! A small model of Go's `time` package: instants with a fixed zone offset, Go layout
//! formatting and parsing ("2006-01-02 15:04:05"), and `time.Duration` text.
//!
//! Templates have no time type, so a time travels between functions as the text of Go's
//! `Time.String()` ("2019-06-13 20:39:39 +0000 UTC"), which is also what Go prints for it.
//! Zones come from the system's tz database ([`super::tz`]); unknown names fall back to UTC,
//! as sprig does when `time.LoadLocation` fails.

/// An instant plus the zone it is displayed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GoTime {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
    /// Offset from UTC in seconds.
    pub offset: i32,
    /// Zone abbreviation ("UTC", or the text Go would print such as "+0200").
    pub zone: String,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Broken-down local fields of a time.
struct Fields {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    weekday: usize,
    yday: u32,
}

impl GoTime {
    pub(crate) fn utc(secs: i64, nanos: u32) -> GoTime {
        GoTime {
            secs,
            nanos,
            offset: 0,
            zone: "UTC".into(),
        }
    }

    pub(crate) fn now() -> GoTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        GoTime::utc(d.as_secs() as i64, d.subsec_nanos()).in_zone("Local")
    }

    /// The same instant shown in zone `name`; unknown zones fall back to UTC.
    pub(crate) fn in_zone(&self, name: &str) -> GoTime {
        match super::tz::load(name) {
            Some(zone) => {
                let (offset, abbrev) = zone.at(self.secs);
                GoTime {
                    secs: self.secs,
                    nanos: self.nanos,
                    offset,
                    zone: abbrev,
                }
            }
            None => GoTime::utc(self.secs, self.nanos),
        }
    }

    /// Adds a duration in nanoseconds.
    pub(crate) fn add_nanos(&self, d: i128) -> GoTime {
        let total = i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos) + d;
        GoTime {
            secs: total.div_euclid(1_000_000_000) as i64,
            nanos: total.rem_euclid(1_000_000_000) as u32,
            offset: self.offset,
            zone: self.zone.clone(),
        }
    }

    fn fields(&self) -> Fields {
        let local = self.secs.saturating_add(i64::from(self.offset));
        let days = local.div_euclid(86_400);
        let rem = local.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Fields {
            year,
            month,
            day,
            hour: rem / 3600,
            min: rem / 60 % 60,
            sec: rem % 60,
            weekday: (days + 4).rem_euclid(7) as usize,
            yday: (days - days_from_civil(year, 1, 1) + 1) as u32,
        }
    }

    /// Go's `Time.String()`.
    pub(crate) fn go_string(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }

    /// Go's `Time.Format(layout)`.
    pub(crate) fn format(&self, layout: &str) -> String {
        let f = self.fields();
        let mut out = String::new();
        for chunk in chunks(layout) {
            match chunk {
                Chunk::Lit(s) => out.push_str(s),
                Chunk::Std(std) => self.format_std(&mut out, &f, std),
            }
        }
        out
    }

    fn format_std(&self, out: &mut String, f: &Fields, std: Std) {
        let hour12 = if f.hour.is_multiple_of(12) {
            12
        } else {
            f.hour % 12
        };
        let zone_text = |sep: bool, secs: bool, short: bool, z: bool| -> String {
            if z && self.offset == 0 {
                return "Z".into();
            }
            let sign = if self.offset < 0 { '-' } else { '+' };
            let o = self.offset.unsigned_abs();
            let (h, m, s) = (o / 3600, o / 60 % 60, o % 60);
            let mut t = format!("{sign}{h:02}");
            if !short {
                if sep {
                    t.push(':');
                }
                t.push_str(&format!("{m:02}"));
                if secs {
                    if sep {
                        t.push(':');
                    }
                    t.push_str(&format!("{s:02}"));
                }
            }
            t
        };
        match std {
            Std::LongMonth => out.push_str(MONTHS[f.month as usize - 1]),
            Std::Month => out.push_str(&MONTHS[f.month as usize - 1][..3]),
            Std::NumMonth => out.push_str(&f.month.to_string()),
            Std::ZeroMonth => out.push_str(&format!("{:02}", f.month)),
            Std::LongWeekDay => out.push_str(DAYS[f.weekday]),
            Std::WeekDay => out.push_str(&DAYS[f.weekday][..3]),
            Std::Day => out.push_str(&f.day.to_string()),
            Std::UnderDay => out.push_str(&format!("{:>2}", f.day)),
            Std::ZeroDay => out.push_str(&format!("{:02}", f.day)),
            Std::UnderYearDay => out.push_str(&format!("{:>3}", f.yday)),
            Std::ZeroYearDay => out.push_str(&format!("{:03}", f.yday)),
            Std::Hour => out.push_str(&format!("{:02}", f.hour)),
            Std::Hour12 => out.push_str(&hour12.to_string()),
            Std::ZeroHour12 => out.push_str(&format!("{hour12:02}")),
            Std::Minute => out.push_str(&f.min.to_string()),
            Std::ZeroMinute => out.push_str(&format!("{:02}", f.min)),
            Std::Second => out.push_str(&f.sec.to_string()),
            Std::ZeroSecond => out.push_str(&format!("{:02}", f.sec)),
            Std::LongYear => {
                if f.year < 0 {
                    out.push_str(&format!("-{:04}", -f.year));
                } else {
                    out.push_str(&format!("{:04}", f.year));
                }
            }
            Std::Year => out.push_str(&format!("{:02}", f.year.rem_euclid(100))),
            Std::PM => out.push_str(if f.hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => out.push_str(if f.hour >= 12 { "pm" } else { "am" }),
            Std::TZ => out.push_str(&self.zone),
            Std::Iso8601TZ => out.push_str(&zone_text(false, false, false, true)),
            Std::Iso8601ColonTZ => out.push_str(&zone_text(true, false, false, true)),
            Std::Iso8601SecondsTZ => out.push_str(&zone_text(false, true, false, true)),
            Std::Iso8601ColonSecondsTZ => out.push_str(&zone_text(true, true, false, true)),
            Std::Iso8601ShortTZ => out.push_str(&zone_text(false, false, true, true)),
            Std::NumTZ => out.push_str(&zone_text(false, false, false, false)),
            Std::NumColonTZ => out.push_str(&zone_text(true, false, false, false)),
            Std::NumSecondsTz => out.push_str(&zone_text(false, true, false, false)),
            Std::NumColonSecondsTZ => out.push_str(&zone_text(true, true, false, false)),
            Std::NumShortTZ => out.push_str(&zone_text(false, false, true, false)),
            Std::Frac { digits, trim, sep } => {
                let s = format!("{:09}", self.nanos);
                let mut digits_s = s[..digits].to_string();
                if trim {
                    digits_s = digits_s.trim_end_matches('0').to_string();
                    if digits_s.is_empty() {
                        return;
                    }
                }
                out.push(sep);
                out.push_str(&digits_s);
            }
        }
    }

    /// Go's `time.Parse(layout, value)` (zone names other than UTC keep a zero offset, as
    /// Go does for abbreviations it does not know).
    pub(crate) fn parse(layout: &str, value: &str) -> Result<GoTime, String> {
        let err = || format!("parsing time {value:?} as {layout:?}: cannot parse");
        let mut rest = value;
        // Go: fields missing from the layout are zero (year 0), or one where zero is impossible.
        let (mut year, mut month, mut day) = (0i64, 1u32, 1u32);
        let (mut hour, mut min, mut sec, mut nanos) = (0u32, 0u32, 0u32, 0u32);
        let mut pm: Option<bool> = None;
        let mut offset: i32 = 0;
        let mut zone = String::from("UTC");
        let chunk_list = chunks(layout);
        for (idx, chunk) in chunk_list.iter().enumerate() {
            match *chunk {
                Chunk::Lit(l) => {
                    rest = rest.strip_prefix(l).ok_or_else(err)?;
                }
                Chunk::Std(std) => {
                    let num = |rest: &mut &str, min_len: usize, max_len: usize| -> Result<u32, String> {
                        let n = rest.bytes().take(max_len).take_while(u8::is_ascii_digit).count();
                        if n < min_len {
                            return Err(err());
                        }
                        let v = rest[..n].parse::<u32>().map_err(|_| err())?;
                        *rest = &rest[n..];
                        Ok(v)
                    };
                    match std {
                        Std::LongYear => {
                            year = i64::from(num(&mut rest, 4, 4)?);
                        }
                        Std::Year => {
                            let y = i64::from(num(&mut rest, 2, 2)?);
                            year = if y >= 69 { 1900 + y } else { 2000 + y };
                        }
                        Std::ZeroMonth => month = num(&mut rest, 2, 2)?,
                        Std::NumMonth => month = num(&mut rest, 1, 2)?,
                        Std::LongMonth | Std::Month => {
                            let found = MONTHS.iter().enumerate().find_map(|(i, name)| {
                                let cand = if std == Std::Month { &name[..3] } else { name };
                                rest.get(..cand.len())
                                    .filter(|p| p.eq_ignore_ascii_case(cand))
                                    .map(|_| (i, cand.len()))
                            });
                            let (i, len) = found.ok_or_else(err)?;
                            month = i as u32 + 1;
                            rest = &rest[len..];
                        }
                        Std::LongWeekDay | Std::WeekDay => {
                            let found = DAYS.iter().find_map(|name| {
                                let cand = if std == Std::WeekDay { &name[..3] } else { name };
                                rest.get(..cand.len())
                                    .filter(|p| p.eq_ignore_ascii_case(cand))
                                    .map(|_| cand.len())
                            });
                            rest = &rest[found.ok_or_else(err)?..];
                        }
                        Std::ZeroDay => day = num(&mut rest, 2, 2)?,
                        Std::Day => day = num(&mut rest, 1, 2)?,
                        Std::UnderDay => {
                            rest = rest.strip_prefix(' ').unwrap_or(rest);
                            day = num(&mut rest, 1, 2)?;
                        }
                        Std::ZeroYearDay | Std::UnderYearDay => {
                            rest = rest.trim_start_matches(' ');
                            num(&mut rest, 1, 3)?;
                        }
                        Std::Hour => hour = num(&mut rest, 1, 2)?,
                        Std::Hour12 => hour = num(&mut rest, 1, 2)?,
                        Std::ZeroHour12 => hour = num(&mut rest, 2, 2)?,
                        Std::Minute => min = num(&mut rest, 1, 2)?,
                        Std::ZeroMinute => min = num(&mut rest, 2, 2)?,
                        Std::Second | Std::ZeroSecond => {
                            sec = num(&mut rest, if std == Std::Second { 1 } else { 2 }, 2)?;
                            // Go accepts a fractional second after seconds even when the
                            // layout has none.
                            let next_is_frac =
                                matches!(chunk_list.get(idx + 1), Some(Chunk::Std(Std::Frac { .. })));
                            if !next_is_frac && rest.starts_with(['.', ',']) {
                                let n = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
                                if n > 0 {
                                    nanos = frac_nanos(&rest[1..1 + n]);
                                    rest = &rest[1 + n..];
                                }
                            }
                        }
                        Std::Frac { digits, trim, .. } => {
                            if rest.starts_with(['.', ',']) {
                                let n = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
                                if !trim && n != digits {
                                    return Err(err());
                                }
                                nanos = frac_nanos(&rest[1..1 + n]);
                                rest = &rest[1 + n..];
                            } else if !trim {
                                return Err(err());
                            }
                        }
                        Std::PM | Std::Pm => {
                            let p = rest.get(..2).ok_or_else(err)?.to_ascii_uppercase();
                            pm = Some(match p.as_str() {
                                "PM" => true,
                                "AM" => false,
                                _ => return Err(err()),
                            });
                            rest = &rest[2..];
                        }
                        Std::TZ if rest.starts_with(['+', '-']) => {
                            // Numeric abbreviations such as "+03" (zones without a name).
                            let n = 1 + rest[1..].bytes().take_while(u8::is_ascii_digit).count();
                            if n < 3 {
                                return Err(err());
                            }
                            zone = rest[..n].to_string();
                            rest = &rest[n..];
                        }
                        Std::TZ => {
                            let n = rest.bytes().take_while(u8::is_ascii_uppercase).count();
                            if n < 3 {
                                return Err(err());
                            }
                            zone = rest[..n].to_string();
                            rest = &rest[n..];
                        }
                        _ => {
                            // Numeric zones, with `Z` meaning UTC for the ISO 8601 forms.
                            if std.is_iso() && rest.starts_with('Z') {
                                rest = &rest[1..];
                                offset = 0;
                                zone = "UTC".into();
                                continue;
                            }
                            let sign = match rest.as_bytes().first() {
                                Some(b'+') => 1,
                                Some(b'-') => -1,
                                _ => return Err(err()),
                            };
                            rest = &rest[1..];
                            let h = num(&mut rest, 2, 2)? as i32;
                            let mut m = 0;
                            let mut s = 0;
                            if !std.is_short() {
                                if std.has_colon() {
                                    rest = rest.strip_prefix(':').ok_or_else(err)?;
                                }
                                m = num(&mut rest, 2, 2)? as i32;
                                if std.has_seconds() {
                                    if std.has_colon() {
                                        rest = rest.strip_prefix(':').ok_or_else(err)?;
                                    }
                                    s = num(&mut rest, 2, 2)? as i32;
                                }
                            }
                            offset = sign * (h * 3600 + m * 60 + s);
                            zone = if offset == 0 {
                                "UTC".into()
                            } else {
                                GoTime::utc(0, 0).with_offset(offset).format("-0700")
                            };
                        }
                    }
                }
            }
        }
        if !rest.is_empty() {
            return Err(format!(
                "parsing time {value:?} as {layout:?}: extra text: {rest:?}"
            ));
        }
        if let Some(pm) = pm {
            if hour > 12 {
                return Err(err());
            }
            hour = match (pm, hour) {
                (true, 12) => 12,
                (true, h) => h + 12,
                (false, 12) => 0,
                (false, h) => h,
            };
        }
        let month_len = match month {
            2 if is_leap(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            1..=12 => 31,
            _ => return Err(format!("parsing time {value:?}: month out of range")),
        };
        if day < 1 || day > month_len || hour > 23 || min > 59 || sec > 59 {
            return Err(format!("parsing time {value:?}: day out of range"));
        }
        let local = days_from_civil(year, month, day) * 86_400
            + i64::from(hour) * 3600
            + i64::from(min) * 60
            + i64::from(sec);
        Ok(GoTime {
            secs: local - i64::from(offset),
            nanos,
            offset,
            zone,
        })
    }

    fn with_offset(mut self, offset: i32) -> GoTime {
        self.offset = offset;
        self
    }
}

fn frac_nanos(digits: &str) -> u32 {
    let mut s: String = digits.chars().take(9).collect();
    while s.len() < 9 {
        s.push('0');
    }
    s.parse().unwrap_or(0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    Iso8601TZ,
    Iso8601SecondsTZ,
    Iso8601ShortTZ,
    Iso8601ColonTZ,
    Iso8601ColonSecondsTZ,
    NumTZ,
    NumSecondsTz,
    NumShortTZ,
    NumColonTZ,
    NumColonSecondsTZ,
    Frac { digits: usize, trim: bool, sep: char },
}

impl Std {
    fn is_iso(self) -> bool {
        matches!(
            self,
            Std::Iso8601TZ
                | Std::Iso8601SecondsTZ
                | Std::Iso8601ShortTZ
                | Std::Iso8601ColonTZ
                | Std::Iso8601ColonSecondsTZ
        )
    }
    fn is_short(self) -> bool {
        matches!(self, Std::Iso8601ShortTZ | Std::NumShortTZ)
    }
    fn has_colon(self) -> bool {
        matches!(
            self,
            Std::Iso8601ColonTZ | Std::Iso8601ColonSecondsTZ | Std::NumColonTZ | Std::NumColonSecondsTZ
        )
    }
    fn has_seconds(self) -> bool {
        matches!(
            self,
            Std::Iso8601SecondsTZ | Std::Iso8601ColonSecondsTZ | Std::NumSecondsTz | Std::NumColonSecondsTZ
        )
    }
}

enum Chunk<'a> {
    Lit(&'a str),
    Std(Std),
}

/// Splits a Go layout into literal text and the standard tokens (Go's `nextStdChunk`).
fn chunks(layout: &str) -> Vec<Chunk<'_>> {
    const TOKENS: &[(&str, Std)] = &[
        ("January", Std::LongMonth),
        ("Jan", Std::Month),
        ("Monday", Std::LongWeekDay),
        ("Mon", Std::WeekDay),
        ("MST", Std::TZ),
        ("01", Std::ZeroMonth),
        ("02", Std::ZeroDay),
        ("03", Std::ZeroHour12),
        ("04", Std::ZeroMinute),
        ("05", Std::ZeroSecond),
        ("06", Std::Year),
        ("002", Std::ZeroYearDay),
        ("15", Std::Hour),
        ("1", Std::NumMonth),
        ("2006", Std::LongYear),
        ("2", Std::Day),
        ("__2", Std::UnderYearDay),
        ("_2", Std::UnderDay),
        ("3", Std::Hour12),
        ("4", Std::Minute),
        ("5", Std::Second),
        ("PM", Std::PM),
        ("pm", Std::Pm),
        ("-07:00:00", Std::NumColonSecondsTZ),
        ("-0700", Std::NumTZ),
        ("-070000", Std::NumSecondsTz),
        ("-07:00", Std::NumColonTZ),
        ("-07", Std::NumShortTZ),
        ("Z07:00:00", Std::Iso8601ColonSecondsTZ),
        ("Z070000", Std::Iso8601SecondsTZ),
        ("Z0700", Std::Iso8601TZ),
        ("Z07:00", Std::Iso8601ColonTZ),
        ("Z07", Std::Iso8601ShortTZ),
    ];
    let mut out = Vec::new();
    let mut lit_start = 0;
    let mut i = 0;
    let b = layout.as_bytes();
    while i < b.len() {
        let rest = &layout[i..];
        // Fractional seconds: `.000`, `.999`, `,000`, `,999` right after seconds or not
        // followed by another digit.
        if (b[i] == b'.' || b[i] == b',') && i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') {
            let ch = b[i + 1];
            let n = rest[1..].bytes().take_while(|&c| c == ch).count();
            let after = rest.as_bytes().get(1 + n);
            if !after.is_some_and(u8::is_ascii_digit) {
                if lit_start < i {
                    out.push(Chunk::Lit(&layout[lit_start..i]));
                }
                out.push(Chunk::Std(Std::Frac {
                    digits: n.min(9),
                    trim: ch == b'9',
                    sep: b[i] as char,
                }));
                i += 1 + n;
                lit_start = i;
                continue;
            }
        }
        // Longest match wins among tokens starting here; `Jan` must not eat `January`.
        let mut best: Option<(usize, Std)> = None;
        for (tok, std) in TOKENS {
            if rest.starts_with(tok) && best.is_none_or(|(len, _)| tok.len() > len) {
                // Go: "Mon" only when not followed by a lower-case letter ("Month").
                if (*tok == "Mon" || *tok == "Jan")
                    && rest.as_bytes().get(tok.len()).is_some_and(u8::is_ascii_lowercase)
                    && !rest.starts_with("Monday")
                    && !rest.starts_with("January")
                {
                    continue;
                }
                best = Some((tok.len(), *std));
            }
        }
        match best {
            Some((len, std)) => {
                if lit_start < i {
                    out.push(Chunk::Lit(&layout[lit_start..i]));
                }
                out.push(Chunk::Std(std));
                i += len;
                lit_start = i;
            }
            None => {
                i += rest.chars().next().map(char::len_utf8).unwrap_or(1);
            }
        }
    }
    if lit_start < b.len() {
        out.push(Chunk::Lit(&layout[lit_start..]));
    }
    out
}

/// Go's `time.Duration.String()` for a duration in nanoseconds.
pub(crate) fn duration_string(d: i128) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Sub-second: ns, µs or ms with a fraction.
        let (unit, scale) = if u < 1_000 {
            ("ns", 1u128)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&frac_units(u, scale));
        out.push_str(unit);
    } else {
        let secs_total = u / 1_000_000_000;
        let h = secs_total / 3600;
        let m = secs_total / 60 % 60;
        let s_frac = frac_units(u % 60_000_000_000, 1_000_000_000);
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&s_frac);
        out.push('s');
    }
    if neg { format!("-{out}") } else { out }
}

fn frac_units(v: u128, scale: u128) -> String {
    let whole = v / scale;
    let frac = v % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let f = format!("{frac:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i128, String> {
    let err = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        if n == 0 {
            return Err(err());
        }
        let num: f64 = rest[..n].parse().map_err(|_| err())?;
        rest = &rest[n..];
        let u = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {s:?}")),
        };
        rest = &rest[u..];
        total += num * unit;
    }
    if total > 9.223_372_036_854_776e18 {
        return Err(err());
    }
    let n = total.round() as i128;
    Ok(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_go_layouts() {
        let t = GoTime::utc(1_560_458_379, 0);
        assert_eq!(t.format("02 Jan 06 15:04 -0700"), "13 Jun 19 20:39 +0000");
        assert_eq!(t.format("2006-01-02"), "2019-06-13");
        assert_eq!(
            t.format("Monday, January 2 2006 3:04PM"),
            "Thursday, June 13 2019 8:39PM"
        );
        assert_eq!(t.format(time_rfc3339()), "2019-06-13T20:39:39Z");
        assert_eq!(t.go_string(), "2019-06-13 20:39:39 +0000 UTC");
        let t = GoTime::utc(0, 120_000_000);
        assert_eq!(t.format("05.000 05.999 .9"), "00.120 00.12 .1");
    }

    #[test]
    fn parses_what_it_formats() {
        let t = GoTime::parse("2006-01-02", "2017-12-31").unwrap();
        assert_eq!(t.format("02/01/2006"), "31/12/2017");
        let s = GoTime::utc(1_560_458_379, 5).go_string();
        assert_eq!(
            GoTime::parse("2006-01-02 15:04:05.999999999 -0700 MST", &s)
                .unwrap()
                .secs,
            1_560_458_379
        );
        let z = GoTime::parse("2006-01-02T15:04:05Z07:00", "2019-06-13T22:39:39+02:00").unwrap();
        assert_eq!(z.secs, 1_560_458_379);
        assert!(GoTime::parse("2006-01-02", "2017-02-30").is_err());
        assert!(GoTime::parse("2006-01-02", "nonsense").is_err());
    }

    #[test]
    fn durations_print_and_parse_like_go() {
        assert_eq!(duration_string(61 * 1_000_000_000), "1m1s");
        assert_eq!(duration_string(3600 * 1_000_000_000), "1h0m0s");
        assert_eq!(duration_string(1_500_000_000), "1.5s");
        assert_eq!(duration_string(2_000_000), "2ms");
        assert_eq!(duration_string(-5_000_000_000), "-5s");
        assert_eq!(parse_duration("2h5s").unwrap(), 7_205_000_000_000);
        assert_eq!(parse_duration("-1.5h").unwrap(), -5_400_000_000_000);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("x").is_err());
    }

    fn time_rfc3339() -> &'static str {
        "2006-01-02T15:04:05Z07:00"
    }
}
