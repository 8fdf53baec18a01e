//! `callqual_native`: voip-callqual's SIP message parser, compiled (issue 14).
//!
//! Why Rust: SIP analysis ran at a tenth of tshark's speed with no hot spot left in Python; the
//! parser was ~15 us of a message's ~124 us, spent in a few dozen interpreted string operations
//! per header. Here one call reads the start-line and headers, frames the body and pre-reads what
//! the event needs. It is the only implementation: `callqual/collector/sip/message.py` wraps it
//! (the `SipMessage` API, `SipParseError` reasons) and documents the decisions.
//!
//! Packet bytes are untrusted: every parse runs under `catch_unwind`, so a bug that panics is the
//! error `sip.parser_fault` for that message, never a dead process; nothing indexes or unwraps on
//! input without a bound check first.

mod grammar;
mod message;
mod sdp;
mod text;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple, PyType};

use grammar::{NameAddr, Params};

create_exception!(
    callqual_native,
    ParseError,
    PyValueError,
    "Not usable SIP: args are (reason, detail)."
);

/// The Python classes results are built as (`NameAddr`, `Via`), registered by the wrapper module.
static NAME_ADDR: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static VIA: GILOnceCell<Py<PyType>> = GILOnceCell::new();
/// IPv6 address -> canonical spelling or None (Python's `ipaddress`, as the packet decoder spells it).
static CANONICAL_IPV6: GILOnceCell<PyObject> = GILOnceCell::new();

fn registered<'py, 'a>(
    py: Python<'py>,
    cell: &'a GILOnceCell<Py<PyType>>,
) -> PyResult<&'a Bound<'py, PyType>> {
    cell.get(py)
        .map(|cls| cls.bind(py))
        .ok_or_else(|| PyRuntimeError::new_err("callqual_native.register_types() was not called"))
}

/// Run a pure parse; a panic becomes an error for this input rather than an unwinding interpreter.
fn guarded<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string())
    })
}

fn parse_error(reason: &str, detail: &str) -> PyErr {
    ParseError::new_err((reason.to_string(), detail.to_string()))
}

fn params_dict<'py>(py: Python<'py>, params: &Params) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in params {
        dict.set_item(name, value.as_deref())?;
    }
    Ok(dict)
}

fn name_addr_object<'py>(py: Python<'py>, addr: &NameAddr) -> PyResult<Bound<'py, PyAny>> {
    registered(py, &NAME_ADDR)?.call1((
        addr.display.as_deref(),
        &addr.uri,
        params_dict(py, &addr.params)?,
    ))
}

/// A message's header lines (canonical name, index key, value), kept in Rust until asked for:
/// the event needs only what `parse_sip` pre-reads, so most messages never build the list.
#[pyclass(frozen, eq, module = "callqual_native")]
#[derive(PartialEq)]
struct HeaderBlock {
    headers: Vec<message::Header>,
}

#[pymethods]
impl HeaderBlock {
    /// Every header line as (canonical name, value), in wire order.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            self.headers.iter().map(|h| (&*h.name, h.value.as_str())),
        )
    }

    /// Lower-case canonical name -> every value of that header, in wire order.
    fn index<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let index = PyDict::new(py);
        for header in &self.headers {
            match index.get_item(&*header.key)? {
                Some(bucket) => bucket.downcast::<PyList>()?.append(&header.value)?,
                None => index.set_item(&*header.key, PyList::new(py, [&header.value])?)?,
            }
        }
        Ok(index)
    }

    fn __len__(&self) -> usize {
        self.headers.len()
    }
}

/// Register the `NameAddr` and `Via` named tuples the results are built as.
#[pyfunction]
fn register_types(py: Python<'_>, name_addr: Py<PyType>, via: Py<PyType>) {
    let _ = NAME_ADDR.set(py, name_addr);
    let _ = VIA.set(py, via);
}

/// Parse one SIP message. Returns the `SipMessage` fields in declaration order; raises
/// `ParseError(reason, detail)` for input that is not usable SIP.
#[pyfunction]
#[pyo3(signature = (data, max_header_bytes, max_headers, strict))]
fn parse_sip<'py>(
    py: Python<'py>,
    data: &[u8],
    max_header_bytes: usize,
    max_headers: usize,
    strict: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let parsed = match guarded(|| message::parse_sip(data, max_header_bytes, max_headers, strict)) {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(exc)) => return Err(parse_error(exc.reason, &exc.detail)),
        Err(panic) => return Err(parse_error("sip.parser_fault", &panic)),
    };
    let body = PyBytes::new(py, &data[parsed.body.0..parsed.body.1]);
    let anomalies = PyList::new(py, &parsed.anomalies)?;
    let fields: [Bound<'py, PyAny>; 23] = [
        parsed.is_request.into_pyobject(py)?.to_owned().into_any(),
        parsed.method.into_pyobject(py)?,
        parsed.request_uri.into_pyobject(py)?,
        parsed.status_code.into_pyobject(py)?,
        parsed.reason_phrase.into_pyobject(py)?,
        parsed.first_line.into_pyobject(py)?.into_any(),
        Bound::new(
            py,
            HeaderBlock {
                headers: parsed.headers,
            },
        )?
        .into_any(),
        body.into_any(),
        parsed.call_id.into_pyobject(py)?.into_any(),
        parsed.cseq_num.into_pyobject(py)?.into_any(),
        parsed.cseq_method.into_pyobject(py)?.into_any(),
        parsed.from_uri.into_pyobject(py)?.into_any(),
        parsed.from_tag.into_pyobject(py)?,
        parsed.to_uri.into_pyobject(py)?.into_any(),
        parsed.to_tag.into_pyobject(py)?,
        parsed.content_length.into_pyobject(py)?,
        parsed.size.into_pyobject(py)?.into_any(),
        anomalies.into_any(),
        parsed.via_branch.into_pyobject(py)?,
        parsed.contact_uri.into_pyobject(py)?,
        parsed.user_agent.into_pyobject(py)?,
        parsed.reason_header.into_pyobject(py)?,
        parsed.content_type.into_pyobject(py)?,
    ];
    PyTuple::new(py, fields)
}

/// Register the function that canonicalises IPv6 connection addresses for `parse_sdp`.
#[pyfunction]
fn register_ipv6_canonicaliser(py: Python<'_>, canonical: PyObject) {
    let _ = CANONICAL_IPV6.set(py, canonical);
}

/// Parse an SDP body: (media sections as tuples, anomalies); raises
/// `ParseError(reason, detail, anomalies found before it)`.
#[pyfunction]
fn parse_sdp<'py>(py: Python<'py>, body: &[u8], lenient: bool) -> PyResult<Bound<'py, PyTuple>> {
    let canonicaliser = CANONICAL_IPV6.get(py).ok_or_else(|| {
        PyRuntimeError::new_err("callqual_native.register_ipv6_canonicaliser() was not called")
    })?;
    let mut canonical_ipv6 = |address: &str| -> Option<String> {
        canonicaliser
            .call1(py, (address,))
            .ok()?
            .extract::<Option<String>>(py)
            .ok()?
    };
    let session = match guarded(|| sdp::parse_sdp(body, lenient, &mut canonical_ipv6)) {
        Ok(Ok(session)) => session,
        Ok(Err(exc)) => return Err(ParseError::new_err((exc.reason, exc.detail, exc.anomalies))),
        Err(panic) => {
            return Err(ParseError::new_err((
                "sdp.parser_fault",
                panic,
                Vec::<String>::new(),
            )))
        }
    };
    let media = PyList::empty(py);
    for m in &session.media {
        let rtpmap = PyDict::new(py);
        for (pt, encoding) in &m.rtpmap {
            rtpmap.set_item(pt, encoding)?;
        }
        let section = (
            &m.media,
            m.connection.as_deref(),
            m.port,
            &m.proto,
            // a list of ints (a Vec<u8> would become bytes)
            PyList::new(py, m.payload_types.iter().map(|pt| u32::from(*pt)))?,
            rtpmap,
            m.direction,
        );
        media.append(section)?;
    }
    PyTuple::new(
        py,
        [
            media.into_any(),
            PyList::new(py, &session.anomalies)?.into_any(),
        ],
    )
}

/// Cheap first-line test for routing a datagram to `parse_sip`.
#[pyfunction]
fn looks_like_sip(data: &[u8]) -> bool {
    guarded(|| message::looks_like_sip(data)).unwrap_or(false)
}

fn value_error<T>(result: Result<Result<T, &'static str>, String>) -> PyResult<T> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(reason)) => Err(PyValueError::new_err(reason)),
        Err(panic) => Err(PyValueError::new_err(format!("parser fault: {panic}"))),
    }
}

/// Split a comma-separated header value, respecting quotes and `<...>`; empty elements dropped.
#[pyfunction]
fn split_header_values(value: &str) -> PyResult<Vec<String>> {
    let parts = guarded(|| {
        grammar::split_header_values(value)
            .into_iter()
            .map(str::to_string)
            .collect()
    });
    value_error(parts.map(Ok::<Vec<String>, &'static str>))
}

/// Parse `;name=value;flag` generic-params into a dict; raises ValueError on an unterminated quote.
#[pyfunction]
fn parse_params<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyDict>> {
    params_dict(py, &value_error(guarded(|| grammar::parse_params(text)))?)
}

/// Parse a name-addr or addr-spec into a `NameAddr`; raises ValueError.
#[pyfunction]
fn parse_name_addr<'py>(py: Python<'py>, value: &str) -> PyResult<Bound<'py, PyAny>> {
    name_addr_object(
        py,
        &value_error(guarded(|| grammar::parse_name_addr(value)))?,
    )
}

/// Parse one via-parm into a `Via`; raises ValueError.
#[pyfunction]
fn parse_via<'py>(py: Python<'py>, value: &str) -> PyResult<Bound<'py, PyAny>> {
    let via = value_error(guarded(|| grammar::parse_via(value)))?;
    let params = params_dict(py, &via.params)?;
    registered(py, &VIA)?.call1((via.protocol, via.transport, via.host, via.port, params))
}

/// A header name (any case, compact or long) in its registered spelling.
#[pyfunction]
fn canonical_header_name(name: &str) -> PyResult<String> {
    value_error(guarded(|| grammar::canonical_header_name(name)).map(Ok::<String, &'static str>))
}

/// Test hook: a panic inside the guard must come back as `ParseError("sip.parser_fault", ...)`
/// (it would abort the process if the crate were ever built with `panic = "abort"`).
#[pyfunction]
fn _panic_inside_guard() -> PyResult<()> {
    match guarded(|| panic!("deliberate panic (test hook)")) {
        Ok(()) => Ok(()),
        Err(panic) => Err(parse_error("sip.parser_fault", &panic)),
    }
}

#[pymodule]
fn callqual_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ParseError", py.get_type::<ParseError>())?;
    m.add_class::<HeaderBlock>()?;
    let compact = PyDict::new(py);
    for (short, full) in grammar::COMPACT_FORMS {
        compact.set_item(short, full)?;
    }
    m.add("COMPACT_FORMS", compact)?;
    m.add_function(wrap_pyfunction!(register_types, m)?)?;
    m.add_function(wrap_pyfunction!(register_ipv6_canonicaliser, m)?)?;
    m.add_function(wrap_pyfunction!(parse_sdp, m)?)?;
    m.add_function(wrap_pyfunction!(parse_sip, m)?)?;
    m.add_function(wrap_pyfunction!(looks_like_sip, m)?)?;
    m.add_function(wrap_pyfunction!(split_header_values, m)?)?;
    m.add_function(wrap_pyfunction!(parse_params, m)?)?;
    m.add_function(wrap_pyfunction!(parse_name_addr, m)?)?;
    m.add_function(wrap_pyfunction!(parse_via, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_header_name, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_inside_guard, m)?)?;
    Ok(())
}
