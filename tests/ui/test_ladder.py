"""The SIP ladder SVG and the text call flow, on real calls from the shared captures."""

import xml.etree.ElementTree as ET
from dataclasses import replace

from callqual.ui.call_flow_text import render_call_flow
from callqual.ui.ladder import render_ladder
from tests.ui.captured_calls import captured_call

SVG = "{http://www.w3.org/2000/svg}"


def _arrows(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [g for g in root.iter(f"{SVG}g") if "msg" in g.get("class", "").split()]


def test_one_column_per_address_and_one_arrow_per_message() -> None:
    messages, streams = captured_call("rtp-pcap/sip-rtp-g722.pcap")
    svg = render_ladder(messages, streams)
    root = ET.fromstring(svg)
    columns = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "col-label"]
    assert columns == ["10.0.2.20:5060", "10.0.2.15:5060"]
    arrows = _arrows(svg)
    labels = [a.findtext(f"{SVG}text") for a in arrows]
    assert labels == ["INVITE (SDP)", "100 Trying", "200 OK (SDP)", "ACK", "BYE", "200 OK"]
    assert all(a.get("tabindex") == "0" and a.get("role") == "button" for a in arrows)
    assert [int(a.get("data-message", "0")) for a in arrows] == [m.id for m in messages]
    assert "+8.499s" in svg  # the delta before the BYE


def test_streams_are_bars_with_codec_packets_loss_and_mos() -> None:
    messages, streams = captured_call("rtp-pcap/sip-rtp-g722.pcap")
    root = ET.fromstring(render_ladder(messages, streams))
    bars = [g for g in root.iter(f"{SVG}g") if g.get("class", "").startswith("stream")]
    assert len(bars) == len(streams) == 1
    text = "".join(bars[0].itertext())
    assert "G722 · 425 pkts · loss 0.0% · MOS 4.37" in text
    assert "10.0.2.15:17472 → 10.0.2.20:6000" in text


def test_ipv6_columns_are_bracketed() -> None:
    messages, _ = captured_call("heplify/sip_ipv6_udp.pcap")
    svg = render_ladder(messages)
    assert "[fe80::21a:a0ff:fe07:32e0]:5060" in svg
    assert len(_arrows(svg)) == 6


def test_retransmissions_are_marked() -> None:
    messages, _ = captured_call("rtp-pcap/sip-rtp-g722.pcap")
    again = replace(messages[0], id=99, retransmission=True)
    arrows = _arrows(render_ladder([messages[0], again, *messages[1:]]))
    assert "retransmission" in (arrows[1].get("class") or "")
    assert arrows[1].findtext(f"{SVG}text") == "INVITE (SDP) (retrans)"
    assert "retransmission" not in (arrows[0].get("class") or "")


def test_packet_text_is_escaped() -> None:
    messages, _ = captured_call("rtp-pcap/sip-rtp-g722.pcap")
    evil = replace(
        messages[1],
        first_line='SIP/2.0 100 <script>alert("x")</script>',
        method=None,
        src_ip="10.0.2.15",
    )
    svg = render_ladder([messages[0], evil], message_url=lambda m: f"/m/{m.id}?a=<b>")
    assert "<script" not in svg
    assert "&lt;script&gt;" in svg
    ET.fromstring(svg)  # still well-formed XML


def test_interactive_ladder_links_each_arrow() -> None:
    messages, _ = captured_call("rtp-pcap/sip-rtp-g722.pcap")
    arrows = _arrows(render_ladder(messages, message_url=lambda m: f"/calls/x/messages/{m.id}"))
    assert [a.get("hx-get") for a in arrows] == [f"/calls/x/messages/{m.id}" for m in messages]
    assert _arrows(render_ladder(messages))[0].get("hx-get") is None


def test_text_call_flow() -> None:
    messages, streams = captured_call("heplify/sip_ipv4_tcp.pcap")
    text = render_call_flow("abc@host", messages, streams)
    lines = text.splitlines()
    assert lines[0] == "Call-ID: abc@host"
    flow = [line for line in lines if " -> " in line and "SSRC" not in line]
    assert len(flow) == 7
    assert "10.33.6.100:64802 -> " in flow[0]
    assert flow[0].rstrip().endswith("TCP   INVITE (SDP)")
    assert flow[-1].rstrip().endswith("200 OK")
