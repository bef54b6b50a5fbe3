//! Human-readable sizes such as `"256kb"`, `"1.5 MB"` or `"1MiB"`.
//!
//! MictlanX clients pass chunk sizes as strings and the Python client parses them with
//! [humanfriendly](https://humanfriendly.readthedocs.io/)'s `parse_size`. This module follows
//! the same semantics so that a chunk size means the same number of bytes in both clients
//! (reference §4.5):
//!
//! * units are **decimal** by default and case-insensitive: `"256kb"` is 256 000 bytes and so
//!   are `"256KB"` and `"256k"`;
//! * binary units must be spelled out: `"1KiB"` is 1024 bytes, `"1MiB"` is 1 048 576;
//! * a decimal fraction is allowed and the result is rounded down (`"1.5MB"` is 1 500 000);
//! * whitespace may separate the number from the unit (`"1 GB"`).
//!
//! [`format_size`] is the inverse used for display (`"1.5 MB"`), again as humanfriendly does.
//!
//! # Examples
//!
//! ```
//! use mictlanx::size::{format_size, parse_size};
//!
//! assert_eq!(parse_size("256kb")?, 256_000);
//! assert_eq!(format_size(256_000), "256 KB");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use thiserror::Error;

/// Why a size string could not be parsed by [`parse_size`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SizeError {
    /// The input is empty or only whitespace.
    #[error("size is empty")]
    Empty,
    /// The input starts with `-`: sizes cannot be negative.
    #[error("size {input:?} is negative")]
    Negative {
        /// The input as given.
        input: String,
    },
    /// The input does not start with a number of the form `digits[.digits]`.
    #[error("size {input:?} does not start with a number (expected digits, optionally with a decimal fraction)")]
    InvalidNumber {
        /// The input as given.
        input: String,
    },
    /// The number is followed by something that is not a known unit.
    #[error("size {input:?} has an unknown unit {unit:?} (expected b, kb, mb, gb, tb, pb, eb or kib, mib, gib, tib, pib, eib)")]
    UnknownUnit {
        /// The input as given.
        input: String,
        /// The unit part of the input, as given.
        unit: String,
    },
    /// The size does not fit in 64 bits.
    #[error("size {input:?} is too large (more than {} bytes)", u64::MAX)]
    Overflow {
        /// The input as given.
        input: String,
    },
}

/// Decimal units of [`format_size`], smallest first, as humanfriendly's `disk_size_units`
/// (ZB and YB cannot be reached by a `u64`).
const DECIMAL_UNITS: [(&str, u64); 6] = [
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("PB", 1_000_000_000_000_000),
    ("EB", 1_000_000_000_000_000_000),
];

/// Unit prefixes in order: index `n` means a multiplier of 1000^(n+1) or 1024^(n+1).
const PREFIXES: [char; 8] = ['k', 'm', 'g', 't', 'p', 'e', 'z', 'y'];

/// Names of the binary units, by prefix index (`kibibyte`, `mebibyte`, ...).
const BINARY_NAMES: [&str; 8] = [
    "kibibyte", "mebibyte", "gibibyte", "tebibyte", "pebibyte", "exbibyte", "zebibyte", "yobibyte",
];

/// Parses a human size such as `"256kb"`, `"1.5 MB"`, `"1MiB"` or `"512"` into bytes.
///
/// The rules are humanfriendly's `parse_size` (decimal by default):
///
/// * surrounding whitespace is ignored; plain digits are bytes;
/// * the number may carry a decimal fraction (`"1.5MB"`); the result is rounded down to whole
///   bytes and is computed exactly (no floating point);
/// * whitespace may separate number and unit; units are case-insensitive;
/// * any unit starting with `b` means bytes (`b`, `B`, `bytes`);
/// * the binary units `kib`, `mib`, `gib`, `tib`, `pib`, `eib` (and their names `kibibyte`,
///   ...; a trailing plural `s` is ignored) are powers of 1024;
/// * any other unit starting with `k`, `m`, `g`, `t`, `p`, `e` is the matching power of 1000
///   (so `kb`, `KB`, `k` and even `kkb` are all 1000, as in humanfriendly). `z` and `y` are
///   accepted too but only fit for tiny fractions.
///
/// # Errors
///
/// [`SizeError::Empty`] for blank input, [`SizeError::Negative`] for a leading `-`,
/// [`SizeError::InvalidNumber`] when the input does not start with `digits[.digits]`,
/// [`SizeError::UnknownUnit`] for an unrecognised unit and [`SizeError::Overflow`] when the
/// result does not fit in a `u64`.
///
/// # Examples
///
/// ```
/// use mictlanx::size::parse_size;
///
/// assert_eq!(parse_size("256kb")?, 256_000);
/// assert_eq!(parse_size("1.5MB")?, 1_500_000);
/// assert_eq!(parse_size("1 GB")?, 1_000_000_000);
/// assert_eq!(parse_size("1KiB")?, 1024);
/// assert_eq!(parse_size("512")?, 512);
/// assert!(parse_size("5XB").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    if s.starts_with('-') {
        return Err(SizeError::Negative {
            input: input.to_owned(),
        });
    }
    let invalid_number = || SizeError::InvalidNumber {
        input: input.to_owned(),
    };
    let overflow = || SizeError::Overflow {
        input: input.to_owned(),
    };

    // The number is the longest prefix of ASCII digits and dots; both are one byte wide, so
    // the split index is a char boundary.
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, rest) = s.split_at(num_end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    let has_fraction = number.contains('.');
    if int_part.is_empty() || (has_fraction && (frac_part.is_empty() || frac_part.contains('.'))) {
        return Err(invalid_number());
    }

    let unit = rest.trim_start();
    let multiplier = unit_multiplier(unit).ok_or_else(|| SizeError::UnknownUnit {
        input: input.to_owned(),
        unit: unit.to_owned(),
    })?;

    // Integer part: checked, so that absurdly long digit strings report an overflow.
    let mut whole: u128 = 0;
    for d in int_part.bytes() {
        whole = whole
            .checked_mul(10)
            .and_then(|w| w.checked_add(u128::from(d - b'0')))
            .ok_or_else(overflow)?;
    }
    let whole = whole.checked_mul(multiplier).ok_or_else(overflow)?;
    let fraction = fraction_times(frac_part, multiplier);
    let total = whole.checked_add(fraction).ok_or_else(overflow)?;
    u64::try_from(total).map_err(|_| overflow())
}

/// `floor(0.<digits> * multiplier)`, exactly, for any number of digits.
///
/// Works from the last digit backwards with `w = d * m + floor(w_next / 10)`, which is exact
/// because `floor(floor(x) / 10) == floor(x / 10)`; every intermediate value stays below
/// `10 * multiplier`, so it cannot overflow a `u128` for multipliers up to 1024^8.
fn fraction_times(digits: &str, multiplier: u128) -> u128 {
    let w = digits
        .bytes()
        .rev()
        .fold(0u128, |acc, d| u128::from(d - b'0') * multiplier + acc / 10);
    w / 10
}

/// The multiplier of a unit (already separated from the number), or `None` if unknown.
fn unit_multiplier(unit: &str) -> Option<u128> {
    if unit.is_empty() {
        return Some(1);
    }
    if !unit.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let lower = unit.to_ascii_lowercase();
    // humanfriendly strips plural `s` before matching the binary symbols and names.
    let singular = lower.trim_end_matches('s');
    if lower.starts_with('b') {
        return Some(1);
    }
    for (n, (&prefix, &name)) in PREFIXES.iter().zip(BINARY_NAMES.iter()).enumerate() {
        let exponent = u32::try_from(n + 1).ok()?;
        let binary_symbol = format!("{prefix}ib");
        if singular == binary_symbol || singular == name {
            return Some(1024u128.pow(exponent));
        }
        if lower.starts_with(prefix) {
            return Some(1000u128.pow(exponent));
        }
    }
    None
}

/// Formats a byte count the way humanfriendly's `format_size` does (decimal units).
///
/// Below 1000 the result is `"1 byte"` or `"N bytes"`. Otherwise the largest of KB, MB, GB, TB,
/// PB and EB whose size (1000^n) is at most `bytes` is used, the value is printed with two
/// decimals, and trailing zeros and a trailing dot are removed. As in humanfriendly the value
/// is rounded in floating point, so 999 999 bytes prints as `"1000 KB"`.
///
/// # Examples
///
/// ```
/// use mictlanx::size::format_size;
///
/// assert_eq!(format_size(0), "0 bytes");
/// assert_eq!(format_size(1), "1 byte");
/// assert_eq!(format_size(25_000), "25 KB");
/// assert_eq!(format_size(1_500_000), "1.5 MB");
/// assert_eq!(format_size(1_234_567), "1.23 MB");
/// ```
pub fn format_size(bytes: u64) -> String {
    for &(symbol, divider) in DECIMAL_UNITS.iter().rev() {
        if bytes >= divider {
            // Precision loss is intended: humanfriendly divides floats too.
            let value = bytes as f64 / divider as f64;
            let text = format!("{value:.2}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            return format!("{text} {symbol}");
        }
    }
    if bytes == 1 {
        "1 byte".to_owned()
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn verified_values() {
        let cases = [
            ("256kb", 256_000),
            ("10kb", 10_000),
            ("1MB", 1_000_000),
            ("1mb", 1_000_000),
            ("25MB", 25_000_000),
            ("1KiB", 1024),
            ("1.5MB", 1_500_000),
            ("1 GB", 1_000_000_000),
            ("512", 512),
            ("3B", 3),
            ("1MiB", 1_048_576),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_size(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn humanfriendly_prefix_rules() {
        assert_eq!(parse_size("1k"), Ok(1000));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("1kkb"), Ok(1000));
        assert_eq!(parse_size("1kilobytes"), Ok(1000));
        assert_eq!(parse_size("2 bytes"), Ok(2));
        assert_eq!(parse_size("2b"), Ok(2));
        assert_eq!(parse_size("1kib"), Ok(1024));
        assert_eq!(parse_size("1KIB"), Ok(1024));
        assert_eq!(parse_size("2 KiBs"), Ok(2048));
        assert_eq!(parse_size("1 kibibyte"), Ok(1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("1PiB"), Ok(1 << 50));
        assert_eq!(parse_size("1EiB"), Ok(1 << 60));
        assert_eq!(parse_size("1t"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("1PB"), Ok(1_000_000_000_000_000));
        assert_eq!(parse_size("1EB"), Ok(1_000_000_000_000_000_000));
        assert_eq!(parse_size("0.001ZB"), Ok(1_000_000_000_000_000_000));
    }

    #[test]
    fn whitespace_and_fractions() {
        assert_eq!(parse_size("  256kb \n"), Ok(256_000));
        assert_eq!(parse_size("1   mb"), Ok(1_000_000));
        assert_eq!(parse_size("1.5"), Ok(1));
        assert_eq!(parse_size("1.9999b"), Ok(1));
        assert_eq!(parse_size("0.5KiB"), Ok(512));
        assert_eq!(parse_size("0.0001kb"), Ok(0));
        assert_eq!(parse_size("1.0009kb"), Ok(1000));
        assert_eq!(parse_size("2.5GiB"), Ok(2_684_354_560));
        // Many fraction digits are handled exactly.
        assert_eq!(
            parse_size("0.99999999999999999999999999999999999999999kb"),
            Ok(999)
        );
        assert_eq!(parse_size("007kb"), Ok(7000));
    }

    #[test]
    fn errors() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert_eq!(parse_size("  "), Err(SizeError::Empty));
        assert_eq!(
            parse_size("-5MB"),
            Err(SizeError::Negative {
                input: "-5MB".into()
            })
        );
        assert_eq!(
            parse_size("5XB"),
            Err(SizeError::UnknownUnit {
                input: "5XB".into(),
                unit: "XB".into()
            })
        );
        assert_eq!(
            parse_size("abc"),
            Err(SizeError::InvalidNumber {
                input: "abc".into()
            })
        );
        assert_eq!(
            parse_size("1.2.3MB"),
            Err(SizeError::InvalidNumber {
                input: "1.2.3MB".into()
            })
        );
        assert!(matches!(
            parse_size(".5MB"),
            Err(SizeError::InvalidNumber { .. })
        ));
        assert!(matches!(
            parse_size("5.MB"),
            Err(SizeError::InvalidNumber { .. })
        ));
        assert!(matches!(
            parse_size("+5MB"),
            Err(SizeError::InvalidNumber { .. })
        ));
        assert!(matches!(
            parse_size("5 k b"),
            Err(SizeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_size("5 kb!"),
            Err(SizeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_size("5 µb"),
            Err(SizeError::UnknownUnit { .. })
        ));
        assert_eq!(
            parse_size("99999999999999999999PB"),
            Err(SizeError::Overflow {
                input: "99999999999999999999PB".into()
            })
        );
        assert!(matches!(
            parse_size("18446744073709551616"),
            Err(SizeError::Overflow { .. })
        ));
        assert!(matches!(
            parse_size(&"9".repeat(100)),
            Err(SizeError::Overflow { .. })
        ));
        assert!(matches!(parse_size("1ZB"), Err(SizeError::Overflow { .. })));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn error_messages() {
        assert_eq!(SizeError::Empty.to_string(), "size is empty");
        let msg = parse_size("5XB").err().map(|e| e.to_string());
        assert!(msg.is_some_and(|m| m.contains("unknown unit \"XB\"")));
    }

    #[test]
    fn format_values() {
        assert_eq!(format_size(0), "0 bytes");
        assert_eq!(format_size(1), "1 byte");
        assert_eq!(format_size(21), "21 bytes");
        assert_eq!(format_size(999), "999 bytes");
        assert_eq!(format_size(1000), "1 KB");
        assert_eq!(format_size(25_000), "25 KB");
        assert_eq!(format_size(1_500_000), "1.5 MB");
        assert_eq!(format_size(1_234_567), "1.23 MB");
        assert_eq!(format_size(1_000_000_000), "1 GB");
        assert_eq!(format_size(2_500_000_000_000), "2.5 TB");
        assert_eq!(format_size(1_000_000_000_000_000), "1 PB");
        assert_eq!(format_size(u64::MAX), "18.45 EB");
        assert_eq!(format_size(999_999), "1000 KB");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse_size(&s);
        }

        #[test]
        fn plain_numbers_are_bytes(n in any::<u64>()) {
            prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
        }

        #[test]
        fn kilobytes_scale(n in 0u64..1_000_000_000) {
            prop_assert_eq!(parse_size(&format!("{n}kb")), Ok(n * 1000));
            prop_assert_eq!(parse_size(&format!("{n} KiB")), Ok(n * 1024));
        }

        #[test]
        fn format_then_parse_is_close(n in 1000u64..u64::MAX / 2) {
            // Two decimals of the largest unit: the round trip is within 1 % of the input.
            let back = parse_size(&format_size(n)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let diff = back.abs_diff(n);
            prop_assert!(diff <= n / 100 + 1, "{} -> {} -> {}", n, format_size(n), back);
        }
    }
}
