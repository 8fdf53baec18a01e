//! Packet text: the one decoding of SIP bytes, and Python's notion of whitespace.
//!
//! The Python side of the project reads every string it gets from here, so the rules are Python's:
//! `str.strip()` and `str.split()` treat as whitespace what `str.isspace()` does, which is Rust's
//! Unicode `White_Space` plus the four ASCII separators U+001C..U+001F.

use std::borrow::Cow;
use std::fmt::Write;

/// `str.isspace()` for one character.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `str.lstrip()`.
pub fn py_lstrip(s: &str) -> &str {
    s.trim_start_matches(is_py_space)
}

/// `str.strip(" \t")`.
pub fn strip_sp_tab(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// `str.split()`: runs of whitespace separate, none at either end.
pub fn py_split(s: &str) -> Vec<&str> {
    s.split(is_py_space)
        .filter(|part| !part.is_empty())
        .collect()
}

/// `str.split(None, 1)`: the first word and the rest with its leading whitespace removed.
pub fn py_split_once(s: &str) -> Vec<&str> {
    let s = py_lstrip(s);
    if s.is_empty() {
        return Vec::new();
    }
    match s.find(is_py_space) {
        None => vec![s],
        Some(at) => {
            let rest = py_lstrip(&s[at..]);
            if rest.is_empty() {
                vec![&s[..at]]
            } else {
                vec![&s[..at], rest]
            }
        }
    }
}

/// Bytes as packet text: valid UTF-8 as is, every other byte as its `\xNN` escape
/// (Python's `decode("utf-8", errors="backslashreplace")`, `callqual.schemas.packet_content`).
/// Returns the text and whether it was valid UTF-8.
pub fn packet_text(data: &[u8]) -> (Cow<'_, str>, bool) {
    match std::str::from_utf8(data) {
        Ok(text) => (Cow::Borrowed(text), true),
        Err(_) => {
            let mut out = String::with_capacity(data.len() + 16);
            for chunk in data.utf8_chunks() {
                out.push_str(chunk.valid());
                for byte in chunk.invalid() {
                    let _ = write!(out, "\\x{byte:02x}");
                }
            }
            (Cow::Owned(out), false)
        }
    }
}

/// RFC 3261 `token` characters (the project's `_TOKEN_RE`).
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b".!%*_+`'~-".contains(&b)
}

/// A non-empty run of token characters and nothing else.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// A non-empty run of ASCII digits.
pub fn is_ascii_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// At most `limit` characters of `s` (Python's `s[:limit]`), for error details.
pub fn head_chars(s: &str, limit: usize) -> &str {
    match s.char_indices().nth(limit) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Python's `repr()` of a short string, for error details (quotes and backslashes escaped).
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}
