//! The header-value grammar the pipeline reads (RFC 3261 sections 7.3.1, 20.10, 20.42, 25.1):
//! comma lists, generic-params, name-addr / addr-spec, via-parm, and header-name spelling.
//!
//! Every function is total: bad input is an `Err(&'static str)` (the Python side raises
//! `ValueError` with it), never a panic, and every scan is linear in its input.

use std::collections::HashSet;

use crate::text::{is_ascii_digits, py_lstrip, py_split_once, py_strip};

/// `;name=value;flag` parameters: lower-cased names, first occurrence wins, wire order kept.
pub type Params = Vec<(String, Option<String>)>;

/// A From/To/Contact value: display name, URI and the header's parameters.
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Params,
}

/// One via-parm: `SIP/2.0`, transport, host, port and parameters.
pub struct Via {
    pub protocol: String,
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

pub fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| value.as_deref())
}

/// RFC 3261 7.3.3 and the IANA registry of compact header names.
pub const COMPACT_FORMS: [(&str, &str); 20] = [
    ("i", "Call-ID"),
    ("f", "From"),
    ("t", "To"),
    ("v", "Via"),
    ("m", "Contact"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("k", "Supported"),
    ("s", "Subject"),
    ("e", "Content-Encoding"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("b", "Referred-By"),
    ("u", "Allow-Events"),
    ("x", "Session-Expires"),
    ("a", "Accept-Contact"),
    ("j", "Reject-Contact"),
    ("d", "Request-Disposition"),
    ("y", "Identity"),
    ("n", "Identity-Info"),
];

/// Names whose registered spelling is not plain Title-Case-Per-Dash.
const SPECIAL_NAMES: [&str; 22] = [
    "Call-ID",
    "CSeq",
    "RSeq",
    "RAck",
    "WWW-Authenticate",
    "MIME-Version",
    "Content-ID",
    "SIP-ETag",
    "SIP-If-Match",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "P-Charging-Vector",
    "P-Charging-Function-Addresses",
    "P-Access-Network-Info",
    "P-Visited-Network-ID",
    "P-Called-Party-ID",
    "P-Early-Media",
    "P-DCS-Billing-Info",
    "P-User-Database",
    "X-RTP-Stat",
    "X-Asterisk-HangupCause",
    "X-Asterisk-HangupCauseCode",
];

/// A header name (any case, compact or long) in its registered spelling.
pub fn canonical_header_name(name: &str) -> String {
    let lower = name.to_lowercase();
    if let Some((_, full)) = COMPACT_FORMS.iter().find(|(short, _)| *short == lower) {
        return (*full).to_string();
    }
    if let Some(special) = SPECIAL_NAMES
        .iter()
        .find(|special| special.eq_ignore_ascii_case(&lower))
    {
        return (*special).to_string();
    }
    let mut out = String::with_capacity(lower.len());
    for (i, part) in lower.split('-').enumerate() {
        if i > 0 {
            out.push('-');
        }
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// Split a comma-separated header value; commas in quotes or `<...>` do not separate.
pub fn split_header_values(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    if !value.contains(',') {
        let stripped = py_strip(value);
        if !stripped.is_empty() {
            out.push(stripped);
        }
        return out;
    }
    let bytes = value.as_bytes();
    let (mut start, mut i) = (0, 0);
    let (mut in_quote, mut in_angle) = (false, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_quote {
            if b == b'\\' {
                // the escaped character is skipped whole (it may be several bytes long)
                i += 1;
                while i + 1 < bytes.len() && (bytes[i + 1] & 0xC0) == 0x80 {
                    i += 1;
                }
            } else if b == b'"' {
                in_quote = false;
            }
        } else if b == b'"' {
            in_quote = true;
        } else if b == b'<' {
            in_angle = true;
        } else if b == b'>' {
            in_angle = false;
        } else if b == b',' && !in_angle {
            let part = py_strip(&value[start..i]);
            if !part.is_empty() {
                out.push(part);
            }
            start = i + 1;
        }
        i += 1;
    }
    let part = py_strip(&value[start.min(value.len())..]);
    if !part.is_empty() {
        out.push(part);
    }
    out
}

/// The first element of a comma list, without splitting the rest.
pub fn first_header_value(value: &str) -> Option<&str> {
    split_header_values(value).into_iter().next()
}

/// Adds a parameter unless one of that name came first.
struct ParamSink {
    params: Params,
    seen: Option<HashSet<String>>,
}

impl ParamSink {
    fn new() -> Self {
        ParamSink {
            params: Vec::new(),
            seen: None,
        }
    }

    fn add(&mut self, name: String, value: Option<String>) {
        if name.is_empty() {
            return;
        }
        // a linear look-up for the usual handful; a set once an attacker sends hundreds
        if self.params.len() >= 16 && self.seen.is_none() {
            self.seen = Some(self.params.iter().map(|(key, _)| key.clone()).collect());
        }
        match &mut self.seen {
            Some(seen) => {
                if seen.insert(name.clone()) {
                    self.params.push((name, value));
                }
            }
            None => {
                if !self.params.iter().any(|(key, _)| *key == name) {
                    self.params.push((name, value));
                }
            }
        }
    }
}

/// Read the quoted-string opening at `text[start]`: (index after it, unescaped content).
fn scan_quoted(text: &str, start: usize) -> Result<(usize, String), &'static str> {
    let inner = &text[start + 1..];
    let end = inner.find('"').ok_or("unterminated quoted string")?;
    if !inner[..end].contains('\\') {
        return Ok((start + 1 + end + 1, inner[..end].to_string()));
    }
    let mut out = String::new();
    let mut chars = inner.char_indices();
    while let Some((at, c)) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => out.push(c),
            }
            continue;
        }
        if c == '"' {
            return Ok((start + 1 + at + 1, out));
        }
        out.push(c);
    }
    Err("unterminated quoted string")
}

/// Parse `;name=value;flag` generic-params; names lower-cased, first wins, values keep their case.
pub fn parse_params(text: &str) -> Result<Params, &'static str> {
    let mut sink = ParamSink::new();
    if !text.contains('"') {
        for part in text.split(';') {
            let (name, value) = match part.find('=') {
                Some(eq) => (&part[..eq], Some(py_strip(&part[eq + 1..]).to_string())),
                None => (part, None),
            };
            sink.add(py_strip(name).to_lowercase(), value);
        }
        return Ok(sink.params);
    }
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        while i < n && matches!(bytes[i], b';' | b' ' | b'\t') {
            i += 1;
        }
        if i >= n {
            break;
        }
        let mut j = i;
        while j < n && !matches!(bytes[j], b'=' | b';') {
            j += 1;
        }
        let name = py_strip(&text[i..j]).to_lowercase();
        let mut value = None;
        if j < n && bytes[j] == b'=' {
            let mut k = j + 1;
            while k < n && matches!(bytes[k], b' ' | b'\t') {
                k += 1;
            }
            if k < n && bytes[k] == b'"' {
                let (end, quoted) = scan_quoted(text, k)?;
                value = Some(quoted);
                k = end;
                while k < n && bytes[k] != b';' {
                    k += 1;
                }
            } else {
                let start = k;
                while k < n && bytes[k] != b';' {
                    k += 1;
                }
                value = Some(py_strip(&text[start..k]).to_string());
            }
            j = k;
        }
        sink.add(name, value);
        i = j;
    }
    Ok(sink.params)
}

/// Parse `[display] <uri>;params` or `uri;params` (RFC 3261 20.10). Without angle brackets the URI
/// ends at the first `;`: the parameters belong to the header (that is where `tag` lives).
pub fn parse_name_addr(value: &str) -> Result<NameAddr, &'static str> {
    let s = py_strip(value);
    if s.starts_with('"') {
        let (end, display) = scan_quoted(s, 0)?;
        let rest = py_lstrip(&s[end..]);
        if !rest.starts_with('<') {
            return Err("display name without <uri>");
        }
        let gt = rest.find('>').ok_or("unterminated <uri>")?;
        return Ok(NameAddr {
            display: Some(display),
            uri: py_strip(&rest[1..gt]).to_string(),
            params: parse_params(&rest[gt + 1..])?,
        });
    }
    let lt = s.find('<');
    let semi = s.find(';');
    if let Some(lt) = lt {
        if semi.is_none_or(|semi| lt < semi) {
            let gt = lt + s[lt..].find('>').ok_or("unterminated <uri>")?;
            let token_display = py_strip(&s[..lt]);
            return Ok(NameAddr {
                display: (!token_display.is_empty()).then(|| token_display.to_string()),
                uri: py_strip(&s[lt + 1..gt]).to_string(),
                params: parse_params(&s[gt + 1..])?,
            });
        }
    }
    let (uri, params) = match semi {
        None => (s, Vec::new()),
        Some(semi) => (py_strip(&s[..semi]), parse_params(&s[semi..])?),
    };
    if uri.is_empty() || uri.contains(' ') || uri.contains('>') {
        return Err("bad addr-spec");
    }
    Ok(NameAddr {
        display: None,
        uri: uri.to_string(),
        params,
    })
}

/// Parse one via-parm: `SIP / 2.0 / UDP host[:port];params` (LWS allowed around the slashes).
pub fn parse_via(value: &str) -> Result<Via, &'static str> {
    let (head, params) = match value.find(';') {
        None => (value, Vec::new()),
        Some(semi) => (&value[..semi], parse_params(&value[semi..])?),
    };
    let parts: Vec<&str> = head.splitn(3, '/').map(py_strip).collect();
    if parts.len() != 3 {
        return Err("bad sent-protocol");
    }
    let (proto_name, version, rest) = (parts[0], parts[1], parts[2]);
    let fields = py_split_once(rest);
    if fields.len() != 2 || proto_name.is_empty() || version.is_empty() {
        return Err("bad sent-protocol");
    }
    let transport = fields[0].to_uppercase();
    let mut sent_by = py_strip(fields[1]);
    if sent_by.contains(' ') {
        // a trailing comment "(...)" is allowed by the grammar; drop it
        sent_by = py_split_once(sent_by).first().copied().unwrap_or("");
    }
    let (host, port) = split_hostport(sent_by)?;
    if host.is_empty() {
        return Err("bad sent-by");
    }
    Ok(Via {
        protocol: format!("{}/{}", proto_name.to_uppercase(), version),
        transport,
        host: host.to_string(),
        port,
        params,
    })
}

fn split_hostport(text: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port_text) = if text.starts_with('[') {
        let end = text.find(']').ok_or("bad IPv6 reference")?;
        let (host, tail) = (&text[..end + 1], &text[end + 1..]);
        if tail.is_empty() {
            return Ok((host, None));
        }
        match tail.strip_prefix(':') {
            Some(port_text) => (host, port_text),
            None => return Err("bad port"),
        }
    } else {
        match text.find(':') {
            None => return Ok((text, None)),
            Some(colon) => (&text[..colon], &text[colon + 1..]),
        }
    };
    if !is_ascii_digits(port_text) || port_text.len() > 5 {
        return Err("bad port");
    }
    let port: u32 = port_text.parse().map_err(|_| "bad port")?;
    u16::try_from(port)
        .map(|port| (host, Some(port)))
        .map_err(|_| "bad port")
}
