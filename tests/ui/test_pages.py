"""Every page and fragment over a store filled from shared captures, through real HTTP."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from callqual.ui.urls import call_url
from tests.ui.conftest import ODD_CALL_ID, SCRIPT, SCRIPT_CALL_ID

FAILED_CALL = "11894297-4432a9f8@192.168.1.2"  # aaa.pcap: 480, call_failed + long_post_dial_delay
G722_CALL = "1-2161@10.0.2.20"


def _only_external_scripts(html: str) -> None:
    for tag in re.findall(r"<script[^>]*>", html):
        assert 'src="/static/' in tag, tag
    assert not re.search(r"<script[^>]*>[^<]+</script>", html)
    assert " on" not in "".join(re.findall(r"<[a-z]+ [^>]*\bon[a-z]+=", html))


def test_overview(http: httpx.Client) -> None:
    r = http.get("/")
    assert r.status_code == 200
    assert "default-src 'none'; script-src 'self'" in r.headers["content-security-policy"]
    _only_external_scripts(r.text)
    api = http.get("/api/overview").json()
    assert f'<span class="figure" id="calls-figure">{api["calls"]}</span> calls' in r.text
    assert api["calls"] == 13
    cursor = int(re.search(r'sse-connect="/events/alerts\?after=(\d+)', r.text).group(1))  # type: ignore[union-attr]
    assert cursor == 11  # every stored alert is already on the page
    assert r.text.count('class="sev-') == len(api["latest_alerts"]) > 0
    assert "MOS distribution" in r.text and "Calls per minute" in r.text


def test_alerts_page_filters_and_evidence(http: httpx.Client) -> None:
    page = http.get("/alerts")
    assert page.status_code == 200
    assert page.text.count('class="alert-row') == 11
    failed = http.get("/alerts", params={"rule": "call_failed"})
    assert failed.text.count('class="alert-row') == 4
    critical = http.get("/api/alerts", params={"severity": "critical"}).json()
    html = http.get("/alerts", params={"severity": "critical"}).text
    assert html.count('class="alert-row') == critical["total"]
    alert = next(a for a in http.get("/api/alerts").json()["rows"] if a["call_id"] == FAILED_CALL)
    evidence = http.get(f"/alerts/{alert['alert_id']}/evidence")
    assert evidence.status_code == 200
    hits = re.findall(r'<span class="line hit">([^<]*)</span>', evidence.text)
    first_lines = [e["first_line"] for e in alert["evidence"]]
    assert any(first_lines[0] in h for h in hits)
    assert f'href="{call_url(FAILED_CALL)}"' in evidence.text
    assert http.get("/alerts/no-such-alert/evidence").status_code == 404


def test_bad_filter_is_a_counted_400(http: httpx.Client) -> None:
    before = http.get("/healthz").json()["errors"].get("bad_request", 0)
    r = http.get("/alerts", params={"severity": "apocalyptic"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "severity"
    assert http.get("/calls", params={"mos_below": "loud"}).status_code == 400
    assert http.get("/healthz").json()["errors"]["bad_request"] == before + 2


def test_calls_search_facets_and_pagination(http: httpx.Client) -> None:
    api = http.get("/api/calls").json()
    assert api["total"] == 13
    assert api["facets"] == {"failed_auth": 2, "failed_network": 2, "failed_user": 1, "no_media": 3, "ok": 5}
    html = http.get("/calls").text
    for category, count in api["facets"].items():
        assert re.search(rf">{category} <span class=\"count\">{count}</span>", html)
    problem_rows = html.count('<tr tabindex="0" data-href="/calls/') - html.count('class="">')
    assert html.index('class="problem"') < html.index('class="">')  # problem calls first
    assert problem_rows == 8
    ok = http.get("/calls", params={"category": "ok"}).text
    assert ok.count('data-href="/calls/') == 5
    by_ip = http.get("/api/calls", params={"ip": "10.33.6.101"}).json()
    assert by_ip["total"] == 1
    assert "10.33.6.101" in (by_ip["rows"][0]["caller_ip"], by_ip["rows"][0]["callee_ip"])


def test_pagination(http: httpx.Client, ui_small_pages: str) -> None:
    first = httpx.get(ui_small_pages + "/calls").text
    assert first.count('data-href="/calls/') == 5
    assert "page 1 of 3 (13 in all)" in first
    assert 'href="?page=2" rel="next"' in first
    third = httpx.get(ui_small_pages + "/calls?page=3").text
    assert third.count('data-href="/calls/') == 3
    assert 'rel="next"' not in third


def test_csv_export(http: httpx.Client) -> None:
    r = http.get("/calls.csv", params={"category": "failed_auth"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert lines[0].startswith("call_id,start_ts,")
    assert len(lines) == 3


def test_call_page(http: httpx.Client) -> None:
    detail = http.get(f"/api/calls/{G722_CALL}").json()
    r = http.get(call_url(G722_CALL))
    assert r.status_code == 200
    _only_external_scripts(r.text)
    assert r.text.count('class="msg ') == len(detail["messages"]) == 6
    assert "G722 · 425 pkts" in r.text
    assert "<style>" not in r.text  # the page's CSS styles the ladder; the CSP allows no inline style
    assert f'hx-get="{call_url(G722_CALL)}/messages/{detail["messages"][0]["id"]}"' in r.text
    message = http.get(f"{call_url(G722_CALL)}/messages/{detail['messages'][2]['id']}")
    assert message.status_code == 200
    assert "SIP/2.0 200 OK" in message.text and "User-Agent: FreeSWITCH-mod_sofia" in message.text
    assert http.get(f"{call_url(G722_CALL)}/messages/1").status_code == 404


def test_call_page_alerts_link_to_ladder_messages(http: httpx.Client) -> None:
    detail = http.get(f"/api/calls/{FAILED_CALL}").json()
    html = http.get(call_url(FAILED_CALL)).text
    ids = {m["frame"]: m["id"] for m in detail["messages"]}
    frames = [e["frame"] for a in detail["alerts"] for e in a["evidence"]]
    assert frames
    for frame in frames:
        assert f'href="#msg-{ids[frame]}"' in html
        assert f'id="msg-{ids[frame]}"' in html
    assert "Post-dial delay" in html and "480" in html


def test_call_page_quality_charts(http: httpx.Client) -> None:
    calls = http.get("/api/calls").json()["rows"]
    with_intervals = [c for c in calls if http.get("/api" + call_url(c["call_id"])).json()["intervals"]]
    assert with_intervals
    html = http.get(call_url(with_intervals[0]["call_id"])).text
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 3
    assert "<polyline" in html


@pytest.mark.tshark
def test_pcap_export_reads_back_in_tshark(http: httpx.Client, tmp_path: Path) -> None:
    detail = http.get(f"/api/calls/{FAILED_CALL}").json()
    r = http.get(call_url(FAILED_CALL, ".pcap"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.tcpdump.pcap"
    path = tmp_path / "call.pcap"
    path.write_bytes(r.content)
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "sip", "-T", "fields", "-e", "sip.Call-ID"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(out) == len(detail["messages"]) == 8
    assert set(out) == {FAILED_CALL}


def test_text_and_svg_exports(http: httpx.Client) -> None:
    text = http.get(call_url(G722_CALL, ".txt"))
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text.startswith(f"Call-ID: {G722_CALL}\n6 SIP messages, 1 RTP streams")
    svg = http.get(call_url(G722_CALL, "/ladder.svg"))
    assert svg.headers["content-type"] == "image/svg+xml"
    assert "style-src 'unsafe-inline'" in svg.headers["content-security-policy"]
    root = ET.fromstring(svg.text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert http.get(call_url("no-such-call", ".pcap")).status_code == 404
    assert http.get(call_url("no-such-call")).status_code == 404


def test_script_in_a_sip_header_renders_as_text(http: httpx.Client) -> None:
    page = http.get(call_url(SCRIPT_CALL_ID)).text
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    detail = http.get(f"/api/calls/{SCRIPT_CALL_ID}").json()
    invite = detail["messages"][0]
    assert f"User-Agent: {SCRIPT}" in invite["text"]  # JSON keeps the text as it was
    fragment = http.get(f"{call_url(SCRIPT_CALL_ID)}/messages/{invite['id']}").text
    assert SCRIPT not in fragment and "User-Agent: &lt;script&gt;alert(1)&lt;/script&gt;" in fragment
    assert SCRIPT not in http.get(call_url(SCRIPT_CALL_ID, "/ladder.svg")).text
    assert SCRIPT not in http.get("/calls").text


def test_api_and_openapi(http: httpx.Client) -> None:
    schema = http.get("/api/openapi.json").json()
    documented = {"/api/calls", "/api/calls/{call_id}", "/api/alerts", "/api/alerts/{alert_id}"}
    documented.add("/api/overview")
    assert documented <= set(schema["paths"])
    alert = http.get("/api/alerts", params={"rule": "call_failed"}).json()["rows"][0]
    detail = http.get(f"/api/alerts/{alert['alert_id']}").json()
    first = detail["messages"][0]
    assert first["text"].startswith(first["first_line"])
    call = http.get(f"/api/calls/{FAILED_CALL}").json()
    assert call["links"]["pcap"] == call_url(FAILED_CALL, ".pcap")
    assert http.get("/api/calls/nope").status_code == 404
    assert http.get("/healthz").json()["status"] == "ok"


def test_call_ids_with_url_characters_reach_their_call(http: httpx.Client) -> None:
    assert call_url(ODD_CALL_ID) == "/calls/a%2Fb%3Fc%2541+%28d%29~e:f@example.test"
    assert ODD_CALL_ID in [c["call_id"] for c in http.get("/api/calls").json()["rows"]]
    detail = http.get("/api" + call_url(ODD_CALL_ID)).json()
    assert detail["call"]["call_id"] == ODD_CALL_ID and len(detail["messages"]) == 6
    page = http.get(call_url(ODD_CALL_ID)).text
    assert page.count('class="msg ') == 6
    first = detail["messages"][0]["id"]
    assert "INVITE sip:test@10.0.2.15:5060" in http.get(f"{call_url(ODD_CALL_ID)}/messages/{first}").text
    assert http.get(call_url(ODD_CALL_ID, ".txt")).text.startswith(f"Call-ID: {ODD_CALL_ID}\n")
    assert http.get(call_url(ODD_CALL_ID, ".pcap")).headers["content-disposition"] == (
        'attachment; filename="a_b_c_41__d__e_f_example.test.pcap"'
    )
    assert http.get(call_url(ODD_CALL_ID, "/ladder.svg")).status_code == 200
