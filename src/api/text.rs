//! Text no field accepts: a NUL character (PostgreSQL's text cannot hold one, so neither
//! backend takes it) or bytes that are not UTF-8. Refused with a 400 before any handler runs,
//! in the path and query by [`refuse_unstorable`], in JSON bodies by [`super::extract::WJson`].

use axum::http::Uri;

use super::{ApiError, ErrorCode};

/// A path or query string that, percent-decoded, holds NUL or is not UTF-8: a 400 naming
/// which (checked for every request before routing).
pub(crate) fn refuse_unstorable(uri: &Uri) -> Result<(), ApiError> {
    check("path", uri.path())?;
    if let Some(query) = uri.query() {
        check("query string", query)?;
    }
    Ok(())
}

fn check(part: &str, raw: &str) -> Result<(), ApiError> {
    // Most requests have nothing escaped: nothing to decode.
    if !raw.contains('%') {
        return Ok(());
    }
    let decoded = percent_decode(raw.as_bytes());
    if decoded.contains(&0) {
        return Err(ApiError::new(
            ErrorCode::InvalidText,
            format!("the {part} holds a NUL character (%00), which no field accepts"),
        ));
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(ApiError::new(
            ErrorCode::InvalidText,
            format!("the {part} is not valid UTF-8 once percent-decoded"),
        ));
    }
    Ok(())
}

/// `%XX` escapes decoded; anything else as it is.
fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let escaped = (raw[i] == b'%')
            .then(|| Some(hex(*raw.get(i + 1)?)? << 4 | hex(*raw.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(raw[i]);
                i += 1;
            }
        }
    }
    out
}

/// Whether a JSON text holds a string with a NUL character: an escape `\u0000` whose
/// backslash is not itself escaped (raw control characters are invalid JSON already).
pub fn json_holds_nul(json: &[u8]) -> bool {
    json.windows(6).enumerate().any(|(at, w)| {
        w == br"\u0000" && json[..at].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_escape_is_found_unless_its_backslash_is_escaped() {
        assert!(json_holds_nul(br#"{"a": "x\u0000y"}"#));
        assert!(json_holds_nul(br#"{"a": "\\\u0000"}"#));
        assert!(!json_holds_nul(br#"{"a": "\\u0000"}"#));
        assert!(!json_holds_nul(br#"{"a": "u0000"}"#));
    }

    #[test]
    fn percent_escapes_are_decoded_and_broken_ones_kept() {
        assert_eq!(percent_decode(b"a%00b%zz%4"), b"a\0b%zz%4");
        assert_eq!(percent_decode(b"%C3%A9"), "é".as_bytes());
    }
}
