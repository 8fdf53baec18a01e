//! SDP (RFC 4566 / RFC 3264) reduced to what media tracking needs: connection address, port,
//! proto, payload types, rtpmap and direction. The decisions are documented in
//! `callqual/collector/sip/sdp.py`, which wraps this module and builds the `SdpMedia` events.
//!
//! IPv6 connection addresses are canonicalised by the caller's function (Python's `ipaddress`,
//! so that they are spelt exactly as the packet decoder spells the RTP endpoints); dotted quads
//! and host names are checked here.

use crate::text::{head_chars, packet_text, py_split, py_strip};

pub const MAX_MEDIA: usize = 64;

pub struct SdpError {
    pub reason: &'static str,
    pub detail: String,
    /// anomalies found before the error (the collector counts them too)
    pub anomalies: Vec<&'static str>,
}

pub struct Media {
    pub media: String,
    pub port: u16,
    pub proto: String,
    pub payload_types: Vec<u8>,
    pub connection: Option<String>,
    pub direction: Option<&'static str>,
    pub rtpmap: Vec<(u8, String)>,
}

pub struct Session {
    pub media: Vec<Media>,
    pub anomalies: Vec<&'static str>,
}

const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];

fn fail(reason: &'static str, detail: impl Into<String>) -> SdpError {
    SdpError {
        reason,
        detail: detail.into(),
        anomalies: Vec::new(),
    }
}

/// 1..=`max_digits` ASCII digits.
fn small_int(text: &str, max_digits: usize) -> Option<u32> {
    if text.is_empty() || text.len() > max_digits || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_m_line(value: &str) -> Result<Media, SdpError> {
    let fields = py_split(value);
    if fields.len() < 3 {
        return Err(fail("sdp.bad_media", head_chars(value, 64)));
    }
    let (media, port_text, proto) = (fields[0], fields[1], fields[2]);
    let short_port = || crate::text::py_repr(head_chars(port_text, 16));
    let (port_part, count_part) = match port_text.split_once('/') {
        Some((port, count)) => (port, Some(count)),
        None => (port_text, None),
    };
    let port = small_int(port_part, 5)
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| fail("sdp.bad_media", format!("bad port {}", short_port())))?;
    if let Some(count) = count_part {
        if small_int(count, 5).is_none_or(|count| count == 0) {
            return Err(fail(
                "sdp.bad_media",
                format!("bad port count {}", short_port()),
            ));
        }
    }
    let mut payload_types = Vec::new();
    if proto.to_uppercase().contains("RTP/") {
        for fmt in &fields[3..] {
            match small_int(fmt, 3).filter(|pt| *pt <= 127) {
                Some(pt) => payload_types.push(pt as u8),
                None => {
                    let shown = crate::text::py_repr(head_chars(fmt, 16));
                    return Err(fail("sdp.bad_media", format!("bad payload type {shown}")));
                }
            }
        }
    }
    Ok(Media {
        media: media.to_string(),
        port,
        proto: proto.to_string(),
        payload_types,
        connection: None,
        direction: None,
        rtpmap: Vec::new(),
    })
}

/// A plain dotted quad without leading zeros is already canonical.
fn is_dotted_quad(address: &str) -> bool {
    let parts: Vec<&str> = address.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|part| {
            small_int(part, 3).is_some_and(|octet| octet <= 255)
                && (*part == "0" || !part.starts_with('0'))
        })
}

fn is_host_name(address: &str) -> bool {
    !address.is_empty()
        && address
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && address.bytes().any(|b| b.is_ascii_alphabetic())
}

fn parse_c_line(
    value: &str,
    canonical_ipv6: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<String, SdpError> {
    let bad = || fail("sdp.bad_connection", head_chars(value, 64));
    let fields = py_split(value);
    if fields.len() != 3 || fields[0] != "IN" || !matches!(fields[1], "IP4" | "IP6") {
        return Err(bad());
    }
    let (address, suffix) = fields[2].split_once('/').unwrap_or((fields[2], ""));
    if !suffix.is_empty()
        && !suffix
            .splitn(2, '/')
            .all(|part| small_int(part, 5).is_some())
    {
        return Err(bad());
    }
    if is_dotted_quad(address) {
        return Ok(address.to_string());
    }
    if address.contains(':') {
        if let Some(canonical) = canonical_ipv6(address) {
            return Ok(canonical);
        }
    }
    // RFC 4566 allows an FQDN as connection-address.
    if is_host_name(address) {
        return Ok(address.to_ascii_lowercase());
    }
    Err(bad())
}

fn parse_rtpmap(value: &str) -> Result<(u8, String), SdpError> {
    let bad = || fail("sdp.bad_rtpmap", head_chars(value, 64));
    let stripped = py_strip(value);
    let (pt_text, encoding) = stripped.split_once(' ').unwrap_or((stripped, ""));
    let encoding = py_strip(encoding);
    let pt = small_int(pt_text, 3)
        .filter(|pt| *pt <= 127)
        .ok_or_else(bad)?;
    let parts: Vec<&str> = encoding.split('/').collect();
    if !(2..=3).contains(&parts.len()) || parts[0].is_empty() || small_int(parts[1], 7).is_none() {
        return Err(bad());
    }
    if parts.len() == 3 && small_int(parts[2], 3).is_none() {
        return Err(bad());
    }
    Ok((pt as u8, encoding.to_string()))
}

/// Parse an SDP body into its media sections. `lenient`: a line that is not `x=...` and an
/// unreadable `a=rtpmap` are skipped and counted in `anomalies` instead of failing the body.
pub fn parse_sdp(
    body: &[u8],
    lenient: bool,
    canonical_ipv6: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<Session, SdpError> {
    let (text, _) = packet_text(body);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|line| line.trim_end_matches('\r'))
        .collect();
    let last = lines.iter().rposition(|line| !py_strip(line).is_empty());
    let Some(last) = last else {
        return Err(fail("sdp.empty", ""));
    };
    let first = lines
        .iter()
        .position(|line| !py_strip(line).is_empty())
        .unwrap_or(last);
    let version_line = lines[first];
    if !version_line.starts_with("v=") {
        return Err(fail("sdp.no_version", head_chars(version_line, 32)));
    }
    if py_strip(&version_line[2..]) != "0" {
        return Err(fail("sdp.bad_version", head_chars(version_line, 32)));
    }
    let mut anomalies: Vec<&'static str> = Vec::new();
    let with_anomalies = |mut exc: SdpError, found: &Vec<&'static str>| {
        exc.anomalies = found.clone();
        exc
    };
    let mut session_connection: Option<String> = None;
    let mut session_direction: &'static str = "sendrecv";
    let mut media: Vec<Media> = Vec::new();
    for line in &lines[first + 1..=last] {
        let mut chars = line.chars();
        let (kind, equals) = (chars.next(), chars.next());
        let kind = match (kind, equals) {
            (Some(kind @ 'a'..='z'), Some('=')) => kind,
            _ => {
                if !lenient {
                    return Err(with_anomalies(
                        fail("sdp.bad_line", head_chars(line, 32)),
                        &anomalies,
                    ));
                }
                anomalies.push("sdp.bad_line");
                continue;
            }
        };
        let value = &line[2..];
        match kind {
            'm' => {
                if media.len() >= MAX_MEDIA {
                    let exc = fail("sdp.too_many_media", format!("more than {MAX_MEDIA}"));
                    return Err(with_anomalies(exc, &anomalies));
                }
                media.push(parse_m_line(value).map_err(|exc| with_anomalies(exc, &anomalies))?);
            }
            'c' => {
                let address = parse_c_line(value, canonical_ipv6)
                    .map_err(|exc| with_anomalies(exc, &anomalies))?;
                match media.last_mut() {
                    None => session_connection = Some(address),
                    Some(current) => current.connection = Some(address),
                }
            }
            'a' => {
                let (name, attr_value) = value.split_once(':').unwrap_or((value, ""));
                if let Some(direction) = DIRECTIONS.iter().find(|d| **d == py_strip(name)) {
                    match media.last_mut() {
                        None => session_direction = direction,
                        Some(current) => current.direction = Some(direction),
                    }
                } else if name == "rtpmap" {
                    let Some(current) = media.last_mut() else {
                        continue;
                    };
                    match parse_rtpmap(attr_value) {
                        Ok((pt, encoding)) => {
                            if !current.rtpmap.iter().any(|(seen, _)| *seen == pt) {
                                current.rtpmap.push((pt, encoding));
                            }
                        }
                        Err(exc) if lenient => anomalies.push(exc.reason),
                        Err(exc) => return Err(with_anomalies(exc, &anomalies)),
                    }
                }
            }
            _ => {}
        }
    }
    for m in &mut media {
        if m.connection.is_none() {
            m.connection.clone_from(&session_connection);
        }
        if m.direction.is_none() {
            m.direction = Some(session_direction);
        }
    }
    Ok(Session { media, anomalies })
}
