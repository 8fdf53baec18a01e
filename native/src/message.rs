//! One SIP message (RFC 3261 sections 7, 18.3, 20): start-line, header section, body framing.
//!
//! The decisions are those documented in `callqual/collector/sip/message.py`, which wraps this
//! module: leading CR/LF skipped, no scanning forward for a start-line, bare LF accepted, an
//! unterminated header section accepted when the data ends with a line terminator, Content-Length
//! framing with two different values rejected, Call-ID/CSeq/From/To required, start-line and
//! headers decoded once as packet text, sizes bounded. Pure Rust with no Python types, so that it
//! can run under `catch_unwind` and be fuzzed on its own.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::grammar::{
    canonical_header_name, first_header_value, param, parse_name_addr, parse_via, NameAddr,
};
use crate::text::{
    head_chars, is_ascii_digits, is_token, is_token_byte, packet_text, py_repr, py_split, py_strip,
    strip_sp_tab,
};

/// A message that is not usable SIP: the stable reason the collector counts, and a detail.
pub struct SipError {
    pub reason: &'static str,
    pub detail: String,
}

fn error(reason: &'static str, detail: impl Into<String>) -> SipError {
    SipError {
        reason,
        detail: detail.into(),
    }
}

#[derive(Clone, PartialEq)]
pub struct Header {
    /// canonical name and index key, shared with the name cache (no copy per message)
    pub name: Arc<str>,
    pub key: Arc<str>,
    pub value: String,
}

/// What `parse_sip` read; the Python wrapper turns it into a `SipMessage`.
pub struct Parsed {
    pub is_request: bool,
    pub method: Option<String>,
    pub request_uri: Option<String>,
    pub status_code: Option<u16>,
    pub reason_phrase: Option<String>,
    pub first_line: String,
    pub headers: Vec<Header>,
    /// body as a range of the input
    pub body: (usize, usize),
    pub call_id: String,
    pub cseq_num: u64,
    pub cseq_method: String,
    pub from_uri: String,
    pub from_tag: Option<String>,
    pub to_uri: String,
    pub to_tag: Option<String>,
    pub content_length: Option<u32>,
    pub size: usize,
    pub anomalies: Vec<&'static str>,
    pub via_branch: Option<String>,
    pub contact_uri: Option<String>,
    pub user_agent: Option<String>,
    pub reason_header: Option<String>,
    pub content_type: Option<String>,
}

struct Anomalies {
    strict: bool,
    found: Vec<&'static str>,
}

impl Anomalies {
    fn add(&mut self, reason: &'static str, detail: impl Into<String>) -> Result<(), SipError> {
        if self.strict {
            return Err(error(reason, detail));
        }
        self.found.push(reason);
        Ok(())
    }
}

const CSEQ_MAX: u64 = (1 << 32) - 1;
const NAME_CACHE_LIMIT: usize = 4096;

thread_local! {
    // Raw header name as written -> (canonical name, index key); bounded (attackers choose names).
    static NAME_CACHE: RefCell<HashMap<String, Names>> = RefCell::new(HashMap::new());
}

type Names = (Arc<str>, Arc<str>);

fn header_name(raw_name: &str) -> Result<Names, SipError> {
    if let Some(names) = NAME_CACHE.with(|cache| cache.borrow().get(raw_name).cloned()) {
        return Ok(names);
    }
    let stripped = raw_name.trim_end_matches([' ', '\t']);
    if !is_token(stripped) {
        return Err(error(
            "sip.bad_header",
            format!("bad name {}", py_repr(head_chars(stripped, 32))),
        ));
    }
    let name: Arc<str> = canonical_header_name(stripped).into();
    let key: Arc<str> = name.to_ascii_lowercase().into();
    NAME_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() < NAME_CACHE_LIMIT {
            cache.insert(raw_name.to_string(), (name.clone(), key.clone()));
        }
    });
    Ok((name, key))
}

/// Cheap first-line test for routing a datagram to `parse_sip`: only the start-line is examined,
/// after skipping CR/LF keep-alives; anything else before it means "not SIP".
pub fn looks_like_sip(data: &[u8]) -> bool {
    let start = data
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(data.len());
    if data.len() - start < 11 {
        return false;
    }
    let head = &data[start..data.len().min(start + 8300)];
    if head[..8].eq_ignore_ascii_case(b"SIP/2.0 ") {
        let code = &head[8..11];
        let first_ok = (b'1'..=b'6').contains(&code[0]);
        return first_ok
            && code[1].is_ascii_digit()
            && code[2].is_ascii_digit()
            && head
                .get(11)
                .is_none_or(|b| matches!(b, b' ' | b'\r' | b'\n'));
    }
    // token{1,32} SP uri{1,8192} SP "SIP/2.0" [CR] (LF | end): neither run can contain SP.
    let method_len = head
        .iter()
        .position(|b| !is_token_byte(*b))
        .unwrap_or(head.len());
    if !(1..=32).contains(&method_len) || head.get(method_len) != Some(&b' ') {
        return false;
    }
    let uri_start = method_len + 1;
    let uri_len = head[uri_start..]
        .iter()
        .position(|b| matches!(b, b' ' | b'\r' | b'\n'))
        .unwrap_or(head.len() - uri_start);
    let version_start = uri_start + uri_len;
    if !(1..=8192).contains(&uri_len) || head.get(version_start) != Some(&b' ') {
        return false;
    }
    let tail = &head[version_start + 1..];
    if tail.len() < 7 || !tail[..7].eq_ignore_ascii_case(b"SIP/2.0") {
        return false;
    }
    let after = &tail[7..];
    let after = after.strip_prefix(b"\r").unwrap_or(after);
    after.is_empty() || after[0] == b'\n'
}

fn find(data: &[u8], needle: &[u8], end: usize) -> Option<usize> {
    let window = &data[..data.len().min(end)];
    window.windows(needle.len()).position(|w| w == needle)
}

/// (end of the header section, start of the body): the first empty line, CRLF or bare LF.
fn find_header_end(data: &[u8], limit: usize) -> Result<(usize, usize), SipError> {
    let window = limit.saturating_add(4);
    let crlf = find(data, b"\n\r\n", window);
    let lf = find(data, b"\n\n", window);
    match (crlf, lf) {
        (Some(crlf), lf) if lf.is_none_or(|lf| crlf < lf) => return Ok((crlf + 1, crlf + 3)),
        (_, Some(lf)) => return Ok((lf + 1, lf + 2)),
        _ => {}
    }
    if data.len() > limit {
        return Err(error(
            "sip.header_too_long",
            format!("no end of headers within {limit} bytes"),
        ));
    }
    if data.ends_with(b"\n") {
        return Ok((data.len(), data.len()));
    }
    Err(error(
        "sip.no_header_end",
        "header section not terminated (truncated?)",
    ))
}

type StartLine = (
    bool,
    Option<String>,
    Option<String>,
    Option<u16>,
    Option<String>,
);

fn parse_start_line(line: &str) -> Result<StartLine, SipError> {
    if line.len() >= 4 && line.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        let (version, rest) = line.split_once(' ').unwrap_or((line, ""));
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(error("sip.bad_version", head_chars(version, 32)));
        }
        let (code_text, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code_text.len() != 3 || !is_ascii_digits(code_text) {
            return Err(error("sip.bad_status_code", head_chars(code_text, 32)));
        }
        let code: u16 = code_text
            .parse()
            .map_err(|_| error("sip.bad_status_code", code_text))?;
        if !(100..=699).contains(&code) {
            return Err(error("sip.bad_status_code", code_text));
        }
        return Ok((
            false,
            None,
            None,
            Some(code),
            Some(py_strip(reason).to_string()),
        ));
    }
    let parts: Vec<&str> = line.split(' ').collect();
    if parts.len() != 3 {
        return Err(error("sip.bad_start_line", head_chars(line, 64)));
    }
    let (method, uri, version) = (parts[0], parts[1], parts[2]);
    if !is_token(method) {
        return Err(error(
            "sip.bad_start_line",
            format!("bad method {}", py_repr(head_chars(method, 32))),
        ));
    }
    if !uri.contains(':') {
        return Err(error(
            "sip.bad_start_line",
            format!("bad Request-URI {}", py_repr(head_chars(uri, 64))),
        ));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        if version.len() >= 4 && version.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
            return Err(error("sip.bad_version", head_chars(version, 32)));
        }
        return Err(error("sip.bad_start_line", head_chars(line, 64)));
    }
    Ok((
        true,
        Some(method.to_string()),
        Some(uri.to_string()),
        None,
        None,
    ))
}

fn parse_cseq(value: &str) -> Result<(u64, String), SipError> {
    let bad = || error("sip.bad_cseq", head_chars(value, 64));
    let parts = py_split(value);
    if parts.len() != 2 {
        return Err(bad());
    }
    let (num_text, method) = (parts[0], parts[1]);
    if !is_ascii_digits(num_text) || num_text.len() > 10 {
        return Err(bad());
    }
    let num: u64 = num_text.parse().map_err(|_| bad())?;
    if num > CSEQ_MAX || !is_token(method) {
        return Err(bad());
    }
    Ok((num, method.to_string()))
}

fn parse_content_length(values: &[&str]) -> Result<u32, SipError> {
    let mut result: Option<u32> = None;
    for value in values {
        let text = py_strip(value);
        if !is_ascii_digits(text) || text.len() > 9 {
            return Err(error("sip.bad_content_length", head_chars(text, 32)));
        }
        let number: u32 = text
            .parse()
            .map_err(|_| error("sip.bad_content_length", text))?;
        if result.is_some_and(|seen| seen != number) {
            return Err(error(
                "sip.bad_content_length",
                "conflicting Content-Length headers",
            ));
        }
        result = Some(number);
    }
    result.ok_or_else(|| error("sip.bad_content_length", ""))
}

fn required_name_addr(
    headers: &[Header],
    key: &str,
    missing: &'static str,
    bad: &'static str,
) -> Result<NameAddr, SipError> {
    let value = headers
        .iter()
        .find(|h| &*h.key == key)
        .ok_or_else(|| error(missing, ""))?;
    parse_name_addr(&value.value).map_err(|exc| {
        error(
            bad,
            format!("{exc}: {}", py_repr(head_chars(&value.value, 64))),
        )
    })
}

/// Parse one SIP message, or say why it is not usable SIP (see the module docstring).
pub fn parse_sip(
    data: &[u8],
    max_header_bytes: usize,
    max_headers: usize,
    strict: bool,
) -> Result<Parsed, SipError> {
    let mut anomalies = Anomalies {
        strict,
        found: Vec::new(),
    };
    let size = data.len();
    let skip = data
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(size);
    if skip >= size {
        return Err(error("sip.empty", if size > 0 { "keep-alive" } else { "" }));
    }
    let data = &data[skip..];
    // The start-line is judged first, so that non-SIP data gets the reason that says so.
    let line_end = data[..data.len().min(max_header_bytes)]
        .iter()
        .position(|b| *b == b'\n');
    if line_end.is_none() && data.len() > max_header_bytes {
        return Err(error(
            "sip.header_too_long",
            format!("start-line longer than {max_header_bytes} bytes"),
        ));
    }
    let raw_first = &data[..line_end.unwrap_or(data.len())];
    let (first_text, first_valid) = packet_text(raw_first);
    let first_line = first_text.trim_end_matches('\r').to_string();
    if !first_valid {
        let at = std::str::from_utf8(raw_first)
            .err()
            .map_or(0, |e| e.valid_up_to());
        anomalies.add("sip.not_utf8", format!("start-line byte {at}"))?;
    }
    let (is_request, method, request_uri, status_code, reason_phrase) =
        parse_start_line(&first_line)?;
    let (head_end, body_start) = match find_header_end(data, max_header_bytes) {
        Ok(ends) => ends,
        Err(exc) if exc.reason == "sip.no_header_end" => {
            // A datagram cut by the snaplen or the sender: the headers it has are still worth reading.
            anomalies.add(exc.reason, exc.detail)?;
            (data.len(), data.len())
        }
        Err(exc) => return Err(exc),
    };
    let (head, head_valid) = packet_text(&data[..head_end]);
    if !head_valid && !anomalies.found.contains(&"sip.not_utf8") {
        let at = std::str::from_utf8(&data[..head_end])
            .err()
            .map_or(0, |e| e.valid_up_to());
        anomalies.add("sip.not_utf8", format!("byte {at}"))?;
    }

    let mut headers: Vec<Header> = Vec::with_capacity(16);
    for line in head.split('\n').skip(1) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // RFC 3261 7.3.1: a folded line continues the previous value.
            match headers.last_mut() {
                None => anomalies.add("sip.bad_header", "continuation before any header")?,
                Some(last) => {
                    let more = py_strip(line);
                    if last.value.is_empty() {
                        last.value = more.to_string();
                    } else {
                        last.value.push(' ');
                        last.value.push_str(more);
                    }
                }
            }
            continue;
        }
        let colon = match line.find(':') {
            Some(colon) if colon > 0 => colon,
            _ => {
                anomalies.add(
                    "sip.bad_header",
                    format!("no colon in {}", py_repr(head_chars(line, 32))),
                )?;
                continue;
            }
        };
        let (name, key) = match header_name(&line[..colon]) {
            Ok(names) => names,
            Err(exc) => {
                anomalies.add(exc.reason, exc.detail)?;
                continue;
            }
        };
        if headers.len() >= max_headers {
            return Err(error(
                "sip.too_many_headers",
                format!("more than {max_headers}"),
            ));
        }
        headers.push(Header {
            name,
            key,
            value: strip_sp_tab(&line[colon + 1..]).to_string(),
        });
    }

    let call_id = match headers.iter().find(|h| &*h.key == "call-id") {
        Some(h) if !h.value.is_empty() => h.value.clone(),
        _ => return Err(error("sip.missing_call_id", "")),
    };
    let cseq = headers
        .iter()
        .find(|h| &*h.key == "cseq")
        .ok_or_else(|| error("sip.missing_cseq", ""))?;
    let (cseq_num, cseq_method) = match parse_cseq(&cseq.value) {
        Ok(cseq) => cseq,
        Err(exc) => {
            // A number followed by a mangled method still orders the transaction.
            let parts = py_split(&cseq.value);
            if strict || parts.len() != 2 || !is_ascii_digits(parts[0]) || parts[0].len() > 10 {
                return Err(exc);
            }
            anomalies.add(exc.reason, exc.detail)?;
            (
                parts[0].parse().map_err(|_| error("sip.bad_cseq", ""))?,
                parts[1].to_string(),
            )
        }
    };
    let from_addr = required_name_addr(&headers, "from", "sip.missing_from", "sip.bad_from")?;
    let to_addr = required_name_addr(&headers, "to", "sip.missing_to", "sip.bad_to")?;

    let rest = (skip + body_start, skip + data.len());
    let mut body = rest;
    let mut content_length = None;
    let lengths: Vec<&str> = headers
        .iter()
        .filter(|h| &*h.key == "content-length")
        .map(|h| h.value.as_str())
        .collect();
    if !lengths.is_empty() {
        match parse_content_length(&lengths) {
            Err(exc) => anomalies.add(exc.reason, exc.detail)?,
            Ok(length) => {
                content_length = Some(length);
                let available = rest.1 - rest.0;
                if length as usize > available {
                    // Over UDP the datagram is the message (RFC 3261 18.3): keep the partial body.
                    anomalies.add(
                        "sip.content_length_mismatch",
                        format!("Content-Length {length}, body {available}"),
                    )?;
                } else {
                    body = (rest.0, rest.0 + length as usize);
                }
            }
        }
    }

    let mut parsed = Parsed {
        is_request,
        method,
        request_uri,
        status_code,
        reason_phrase,
        first_line,
        headers,
        body,
        call_id,
        cseq_num,
        cseq_method,
        from_tag: param(&from_addr.params, "tag").map(str::to_string),
        from_uri: from_addr.uri,
        to_tag: param(&to_addr.params, "tag").map(str::to_string),
        to_uri: to_addr.uri,
        content_length,
        size,
        anomalies: anomalies.found,
        via_branch: None,
        contact_uri: None,
        user_agent: None,
        reason_header: None,
        content_type: None,
    };
    parsed.via_branch = top_element(&parsed.headers, "via")
        .and_then(|via| parse_via(via).ok())
        .and_then(|via| param(&via.params, "branch").map(str::to_string));
    parsed.contact_uri = top_element(&parsed.headers, "contact").and_then(|contact| {
        if contact == "*" {
            Some("*".to_string())
        } else {
            parse_name_addr(contact).ok().map(|addr| addr.uri)
        }
    });
    let first = |key: &str| {
        parsed
            .headers
            .iter()
            .find(|h| &*h.key == key)
            .map(|h| h.value.clone())
    };
    // User-Agent of a request, or Server of a response: an empty User-Agent counts as absent.
    let user_agent = first("user-agent")
        .filter(|ua| !ua.is_empty())
        .or_else(|| first("server"));
    let (reason_header, content_type) = (first("reason"), first("content-type"));
    parsed.user_agent = user_agent;
    parsed.reason_header = reason_header;
    parsed.content_type = content_type;
    Ok(parsed)
}

/// The first element of the first non-empty line of a list header (the top Via, the first Contact).
fn top_element<'a>(headers: &'a [Header], key: &str) -> Option<&'a str> {
    headers
        .iter()
        .filter(|h| &*h.key == key)
        .find_map(|h| first_header_value(&h.value))
}
