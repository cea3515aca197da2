//! The vocabulary every config section shares: where a value came from (a
//! flag, a config file key, or the default), the one-line error naming that
//! place, and the value syntaxes memcached's flags use (sizes with a k/m/g
//! suffix, id lists such as `0,2,4-7`).
//!
//! This module imports nothing else of the crate, so every section can use
//! it without importing the module that assembles the sections.

use std::fmt;

use serde::Deserialize;

/// Exit status for usage and configuration errors (sysexits.h `EX_USAGE`).
pub const EXIT_USAGE: i32 = 64;

/// A configuration error: one line, naming the flag or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a setting's value came from. Every config file key is the long
/// flag's name without the dashes, so one name serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The command line (`--name`, or its short form).
    Flag(&'static str),
    /// The `--config` file (key `name`).
    Key(&'static str),
    /// Neither was given; named as the flag that would change it.
    Default(&'static str),
}

impl Origin {
    /// Whether the value was given (on the command line or in the file).
    pub fn given(self) -> bool {
        !matches!(self, Origin::Default(_))
    }

    /// `Err` with one line: `petrel: <origin>: <what>`.
    pub fn fail<T>(self, what: impl fmt::Display) -> Result<T, ConfigError> {
        Err(ConfigError(format!("petrel: {self}: {what}")))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(n) | Origin::Default(n) => write!(f, "--{n}"),
            Origin::Key(n) => write!(f, "config key `{n}`"),
        }
    }
}

/// One setting's value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub origin: Origin,
}

/// The one precedence rule: the flag over the config file key over nothing.
/// `name` is the long flag's name, which is also the key's.
pub fn pick<T>(flag: Option<T>, key: Option<T>, name: &'static str) -> Option<Sourced<T>> {
    match (flag, key) {
        (Some(value), _) => Some(Sourced {
            value,
            origin: Origin::Flag(name),
        }),
        (None, Some(value)) => Some(Sourced {
            value,
            origin: Origin::Key(name),
        }),
        (None, None) => None,
    }
}

/// [`pick`], falling back to `default`.
pub fn pick_or<T>(flag: Option<T>, key: Option<T>, name: &'static str, default: T) -> Sourced<T> {
    pick(flag, key, name).unwrap_or(Sourced {
        value: default,
        origin: Origin::Default(name),
    })
}

/// [`pick`] for a size ([`SizeValue`]), parsed to bytes.
pub fn pick_size(
    flag: &Option<SizeValue>,
    key: &Option<SizeValue>,
    name: &'static str,
) -> Result<Option<Sourced<u64>>, ConfigError> {
    match pick(flag.as_ref(), key.as_ref(), name) {
        None => Ok(None),
        Some(s) => match s.value.bytes() {
            Some(value) => Ok(Some(Sourced {
                value,
                origin: s.origin,
            })),
            None => s.origin.fail(format!(
                "invalid size '{}' (use bytes or a k/m/g suffix, e.g. 1m)",
                s.value
            )),
        },
    }
}

/// [`pick`] for a switch (a flag without a value, a boolean key): on when
/// either says so, the flag naming the origin.
pub fn pick_switch(flag: bool, key: bool, name: &'static str) -> Sourced<bool> {
    pick_or(flag.then_some(true), key.then_some(true), name, false)
}

/// Deserializes a list key that may also be written as one string
/// (`listen = "127.0.0.1"` or `listen = ["127.0.0.1", "::1"]`).
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A size as written on the command line (text) or in the config file (a
/// number of bytes, or text like `"1m"`).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(u64),
    /// A number with an optional k/m/g suffix.
    Text(String),
}

impl SizeValue {
    /// The command-line form: taken as text, checked when the settings are
    /// merged so that the error names the flag the way every other does.
    pub fn from_flag(text: &str) -> Result<SizeValue, std::convert::Infallible> {
        Ok(SizeValue::Text(text.to_string()))
    }

    /// Bytes, or `None` when the text is not a size.
    pub fn bytes(&self) -> Option<u64> {
        match self {
            SizeValue::Bytes(b) => Some(*b),
            SizeValue::Text(t) => parse_size(t),
        }
    }
}

impl fmt::Display for SizeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeValue::Bytes(b) => write!(f, "{b}"),
            SizeValue::Text(t) => f.write_str(t),
        }
    }
}

/// Parses a memcached size: digits with an optional k/K or m/M suffix
/// (also g/G), in bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&t[..i], 1 << 20),
        (i, 'g' | 'G') => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Parses `0,2,4-7`: ids or inclusive ranges, in the order given, no
/// duplicates, none above `max`.
pub fn parse_id_list(text: &str, max: u32) -> Result<Vec<u32>, String> {
    let mut out: Vec<u32> = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let num = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("bad id '{v}' in '{text}' (expected e.g. 0,2,4-7)"))
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            return Err(format!("bad range '{part}' in '{text}'"));
        }
        if hi > max {
            return Err(format!("id {hi} in '{text}' is above {max}"));
        }
        for id in lo..=hi {
            if out.contains(&id) {
                return Err(format!("id {id} appears twice in '{text}'"));
            }
            out.push(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("2048"), Some(2048));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("m"), None);
        assert_eq!(parse_size("1.5m"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn the_flag_wins_over_the_key_over_the_default() {
        let s = pick_or(Some(1), Some(2), "port", 3);
        assert_eq!((s.value, s.origin.to_string()), (1, "--port".to_string()));
        let s = pick_or(None, Some(2), "port", 3);
        assert_eq!(
            (s.value, s.origin.to_string()),
            (2, "config key `port`".to_string())
        );
        let s = pick_or(None, None, "port", 3);
        assert_eq!((s.value, s.origin), (3, Origin::Default("port")));
        assert!(!s.origin.given());
        assert_eq!(pick::<u8>(None, None, "x"), None);
        let e = pick_size(&None, &Some(SizeValue::Text("1q".into())), "read-buffer")
            .unwrap_err()
            .0;
        assert!(
            e.contains("config key `read-buffer`") && e.contains("'1q'"),
            "{e}"
        );
        let s = pick_size(&Some(SizeValue::Text("2k".into())), &None, "read-buffer")
            .unwrap()
            .unwrap();
        assert_eq!((s.value, s.origin), (2048, Origin::Flag("read-buffer")));
        assert_eq!(pick_switch(false, true, "x").origin, Origin::Key("x"));
        assert!(!pick_switch(false, false, "x").value);
    }

    #[test]
    fn id_lists() {
        assert_eq!(parse_id_list("0", 9).unwrap(), vec![0]);
        assert_eq!(parse_id_list("3,0-2", 9).unwrap(), vec![3, 0, 1, 2]);
        assert_eq!(parse_id_list(" 1 , 4-5 ", 9).unwrap(), vec![1, 4, 5]);
        for bad in ["", "x", "1,1", "3-1", "10", "1-", ",1"] {
            assert!(parse_id_list(bad, 9).is_err(), "{bad:?}");
        }
    }
}
