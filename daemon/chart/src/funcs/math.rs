//! Arithmetic (sprig `numeric.go`). Integer functions convert with `cast.ToInt64` (strings
//! parse, floats truncate); the `*f` functions compute in decimal as sprig does with
//! `shopspring/decimal`, so `addf 1.5 2.2 3` is exactly 6.7 rather than 6.699999999999999.

use crate::tmpl::{FuncMap, Value};

use super::add;
use super::conv::{
    MAX_OUTPUT, arity, call_error, format_float_g, go_string, int_arg, list, str_arg, string, to_f64, to_i64,
};

pub(crate) fn register(m: &mut FuncMap) {
    add(m, "add1", |a| {
        arity("add1", a, 1, 1)?;
        Ok(Value::Int(to_i64(&a[0]).wrapping_add(1)))
    });
    add(m, "add", |a| {
        Ok(Value::Int(a.iter().map(to_i64).fold(0i64, i64::wrapping_add)))
    });
    add(m, "sub", |a| {
        arity("sub", a, 2, 2)?;
        Ok(Value::Int(to_i64(&a[0]).wrapping_sub(to_i64(&a[1]))))
    });
    add(m, "mul", |a| {
        arity("mul", a, 1, usize::MAX)?;
        Ok(Value::Int(a.iter().map(to_i64).fold(1i64, i64::wrapping_mul)))
    });
    add(m, "div", |a| {
        arity("div", a, 2, 2)?;
        let (x, y) = (to_i64(&a[0]), to_i64(&a[1]));
        x.checked_div(y)
            .map(Value::Int)
            .ok_or_else(|| call_error("div", "integer divide by zero"))
    });
    add(m, "mod", |a| {
        arity("mod", a, 2, 2)?;
        let (x, y) = (to_i64(&a[0]), to_i64(&a[1]));
        x.checked_rem(y)
            .map(Value::Int)
            .ok_or_else(|| call_error("mod", "integer divide by zero"))
    });
    for name in ["biggest", "max"] {
        add(m, name, move |a| {
            arity(name, a, 1, usize::MAX)?;
            Ok(Value::Int(a.iter().map(to_i64).max().unwrap_or(0)))
        });
    }
    add(m, "min", |a| {
        arity("min", a, 1, usize::MAX)?;
        Ok(Value::Int(a.iter().map(to_i64).min().unwrap_or(0)))
    });
    add(m, "maxf", |a| {
        arity("maxf", a, 1, usize::MAX)?;
        Ok(Value::Float(
            a.iter().map(to_f64).fold(f64::NEG_INFINITY, f64::max),
        ))
    });
    add(m, "minf", |a| {
        arity("minf", a, 1, usize::MAX)?;
        Ok(Value::Float(a.iter().map(to_f64).fold(f64::INFINITY, f64::min)))
    });
    add(m, "add1f", |a| {
        arity("add1f", a, 1, 1)?;
        Ok(Value::Float(decimal_fold(&a[..1], Some(1.0), Op::Add)))
    });
    add(m, "addf", |a| Ok(Value::Float(decimal_fold(a, None, Op::Add))));
    add(m, "subf", |a| {
        arity("subf", a, 1, usize::MAX)?;
        Ok(Value::Float(decimal_fold(a, None, Op::Sub)))
    });
    add(m, "mulf", |a| {
        arity("mulf", a, 1, usize::MAX)?;
        Ok(Value::Float(decimal_fold(a, None, Op::Mul)))
    });
    add(m, "divf", |a| {
        arity("divf", a, 1, usize::MAX)?;
        if a[1..].iter().any(|v| to_f64(v) == 0.0) {
            return Err(call_error("divf", "decimal division by 0"));
        }
        Ok(Value::Float(decimal_fold(a, None, Op::Div)))
    });
    add(m, "ceil", |a| {
        arity("ceil", a, 1, 1)?;
        Ok(Value::Float(to_f64(&a[0]).ceil()))
    });
    add(m, "floor", |a| {
        arity("floor", a, 1, 1)?;
        Ok(Value::Float(to_f64(&a[0]).floor()))
    });
    add(m, "round", |a| {
        arity("round", a, 2, 3)?;
        let places = int_arg("round", &a[1])?;
        let round_on = a.get(2).map(to_f64).unwrap_or(0.5);
        Ok(Value::Float(round(to_f64(&a[0]), places, round_on)))
    });
    add(m, "atoi", |a| {
        arity("atoi", a, 1, 1)?;
        let s = str_arg("atoi", &a[0])?;
        Ok(Value::Int(s.parse::<i64>().unwrap_or(0)))
    });
    for name in ["int", "int64"] {
        add(m, name, move |a| {
            arity(name, a, 1, 1)?;
            Ok(Value::Int(to_i64(&a[0])))
        });
    }
    add(m, "float64", |a| {
        arity("float64", a, 1, 1)?;
        Ok(Value::Float(to_f64(&a[0])))
    });
    add(m, "toDecimal", |a| {
        arity("toDecimal", a, 1, 1)?;
        let s = go_string(&a[0]);
        Ok(Value::Int(i64::from_str_radix(&s, 8).unwrap_or(0)))
    });
    add(m, "until", |a| {
        arity("until", a, 1, 1)?;
        let count = int_arg("until", &a[0])?;
        let step = if count < 0 { -1 } else { 1 };
        until_step(0, count, step).map(int_list)
    });
    add(m, "untilStep", |a| {
        arity("untilStep", a, 3, 3)?;
        let (start, stop, step) = (
            int_arg("untilStep", &a[0])?,
            int_arg("untilStep", &a[1])?,
            int_arg("untilStep", &a[2])?,
        );
        until_step(start, stop, step).map(int_list)
    });
    add(m, "seq", |a| {
        let mut params = Vec::with_capacity(a.len());
        for v in a {
            params.push(int_arg("seq", v)?);
        }
        seq(&params).map(string)
    });
}

fn int_list(v: Vec<i64>) -> Value {
    list(v.into_iter().map(Value::Int).collect())
}

/// Sprig's `untilStep`; refuses ranges that would allocate more than [`MAX_OUTPUT`] items.
pub(crate) fn until_step(start: i64, stop: i64, step: i64) -> crate::tmpl::Result<Vec<i64>> {
    let mut v = Vec::new();
    let forward = stop >= start;
    if (forward && step <= 0) || (!forward && step >= 0) {
        return Ok(v);
    }
    let count = (i128::from(stop) - i128::from(start)).unsigned_abs() / i128::from(step).unsigned_abs();
    if count > (MAX_OUTPUT / 8) as u128 {
        return Err(call_error(
            "untilStep",
            format!("range of {count} items is too large"),
        ));
    }
    let mut i = start;
    while (forward && i < stop) || (!forward && i > stop) {
        v.push(i);
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    Ok(v)
}

/// Sprig's `seq`, modelled on the Unix command: `seq END`, `seq START END`,
/// `seq START STEP END`; the numbers joined by spaces.
fn seq(params: &[i64]) -> crate::tmpl::Result<String> {
    let nums = match *params {
        [end] => {
            let inc = if end < 1 { -1 } else { 1 };
            until_step(1, end.saturating_add(inc), inc)?
        }
        [start, end] => {
            let step = if end < start { -1 } else { 1 };
            until_step(start, end.saturating_add(step), step)?
        }
        [start, step, end] => {
            let mut inc = 1;
            if end < start {
                inc = -1;
                if step > 0 {
                    return Ok(String::new());
                }
            }
            until_step(start, end.saturating_add(inc), step)?
        }
        _ => return Ok(String::new()),
    };
    Ok(nums.iter().map(i64::to_string).collect::<Vec<_>>().join(" "))
}

fn round(val: f64, places: i64, round_on: f64) -> f64 {
    let pow = 10f64.powi(places.clamp(-400, 400) as i32);
    let digit = pow * val;
    let frac = digit.fract();
    let rounded = if frac >= round_on {
        digit.ceil()
    } else {
        digit.floor()
    };
    rounded / pow
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// An exact decimal `mantissa * 10^-scale`, enough of `shopspring/decimal` for sprig's
/// float functions. Falls back to `f64` arithmetic if a value leaves the i128 range.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Decimal {
    mantissa: i128,
    scale: u32,
}

/// Decimal places `divf` keeps, as `decimal.DivisionPrecision`.
const DIVISION_PRECISION: u32 = 16;

impl Decimal {
    fn from_f64(f: f64) -> Option<Decimal> {
        if !f.is_finite() {
            return None;
        }
        // The shortest representation, as decimal.NewFromFloat uses.
        let s = format_float_g(f);
        let (mant, exp) = match s.split_once('e') {
            Some((m, e)) => (m.to_string(), e.parse::<i32>().ok()?),
            None => (s, 0),
        };
        let (int_part, frac_part) = mant.split_once('.').unwrap_or((&mant, ""));
        let digits = format!("{int_part}{frac_part}");
        let mantissa: i128 = digits.parse().ok()?;
        let scale = frac_part.len() as i32 - exp;
        if scale >= 0 {
            Some(Decimal {
                mantissa,
                scale: scale as u32,
            })
        } else {
            let factor = 10i128.checked_pow(scale.unsigned_abs())?;
            Some(Decimal {
                mantissa: mantissa.checked_mul(factor)?,
                scale: 0,
            })
        }
    }

    fn rescale(self, scale: u32) -> Option<Decimal> {
        let factor = 10i128.checked_pow(scale.checked_sub(self.scale)?)?;
        Some(Decimal {
            mantissa: self.mantissa.checked_mul(factor)?,
            scale,
        })
    }

    fn apply(self, op: Op, other: Decimal) -> Option<Decimal> {
        match op {
            Op::Add | Op::Sub => {
                let scale = self.scale.max(other.scale);
                let (a, b) = (self.rescale(scale)?, other.rescale(scale)?);
                let mantissa = match op {
                    Op::Add => a.mantissa.checked_add(b.mantissa)?,
                    _ => a.mantissa.checked_sub(b.mantissa)?,
                };
                Some(Decimal { mantissa, scale })
            }
            Op::Mul => Some(Decimal {
                mantissa: self.mantissa.checked_mul(other.mantissa)?,
                scale: self.scale.checked_add(other.scale)?,
            }),
            Op::Div => {
                if other.mantissa == 0 {
                    return None;
                }
                // q = self / other with DIVISION_PRECISION places, rounded half away from 0.
                let shift = DIVISION_PRECISION + 1 + other.scale;
                let num = self.mantissa.checked_mul(10i128.checked_pow(shift)?)?;
                let q = num / other.mantissa; // scale: self.scale + DIVISION_PRECISION + 1
                let scale = self.scale + DIVISION_PRECISION + 1;
                let excess = scale - DIVISION_PRECISION;
                let div = 10i128.checked_pow(excess)?;
                let rounded = (q + q.signum() * (div / 2)) / div;
                Some(Decimal {
                    mantissa: rounded,
                    scale: DIVISION_PRECISION,
                })
            }
        }
    }

    fn to_f64(self) -> f64 {
        format!("{}e-{}", self.mantissa, self.scale)
            .parse()
            .unwrap_or(f64::NAN)
    }
}

/// Folds the arguments left to right with `op`, starting from the first argument (or from
/// `first_operand` applied to it, for `add1f`).
fn decimal_fold(args: &[Value], first_operand: Option<f64>, op: Op) -> f64 {
    let floats: Vec<f64> = args.iter().map(to_f64).collect();
    let floats: Vec<f64> = match first_operand {
        Some(x) => floats.into_iter().chain(std::iter::once(x)).collect(),
        None => floats,
    };
    let Some((&first, rest)) = floats.split_first() else {
        return 0.0;
    };
    let exact = Decimal::from_f64(first)
        .and_then(|start| {
            rest.iter()
                .try_fold(start, |acc, &x| acc.apply(op, Decimal::from_f64(x)?))
        })
        .map(Decimal::to_f64);
    exact.unwrap_or_else(|| {
        rest.iter().fold(first, |acc, &x| match op {
            Op::Add => acc + x,
            Op::Sub => acc - x,
            Op::Mul => acc * x,
            Op::Div => acc / x,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_functions_are_decimal_exact() {
        let f =
            |v: &[f64], op| decimal_fold(&v.iter().map(|x| Value::Float(*x)).collect::<Vec<_>>(), None, op);
        assert_eq!(f(&[3.0, 1.5, 2.2], Op::Add), 6.7);
        assert_eq!(f(&[1.2, 2.4, 10.0, 4.0], Op::Mul), 115.2);
        assert_eq!(f(&[2.0, 5.0, 4.0], Op::Div), 0.1);
        assert_eq!(f(&[1.0, 3.0], Op::Div), 0.3333333333333333);
        assert_eq!(f(&[0.3, 0.1], Op::Sub), 0.2);
    }

    #[test]
    fn seq_and_until_step_follow_sprig() {
        assert_eq!(seq(&[0, 1, 3]).unwrap(), "0 1 2 3");
        assert_eq!(seq(&[3, -3, 2]).unwrap(), "3");
        assert_eq!(seq(&[-5]).unwrap(), "1 0 -1 -2 -3 -4 -5");
        assert_eq!(seq(&[0]).unwrap(), "1 0");
        assert_eq!(until_step(0, -10, -2).unwrap(), vec![0, -2, -4, -6, -8]);
        assert!(until_step(3, 99, 0).unwrap().is_empty());
        assert!(until_step(0, i64::MAX, 1).is_err(), "huge ranges are refused");
    }

    #[test]
    fn round_uses_the_round_on_threshold() {
        assert_eq!(round(123.555555, 3, 0.5), 123.556);
        assert_eq!(round(123.5555, 3, 0.6), 123.555);
    }
}
