# The Semtech UDP packet forwarder ingress, fed with datagrams written by hand after the
# protocol's specification (PROTOCOL.TXT, version 2), from real UDP sockets on loopback.
import asyncio
import base64
import json
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import airtime, command, schema

from gateway import config as config_mod
from gateway import metrics as metrics_mod
from gateway.ingress import semtech_packets as sp
from gateway.ingress.semtech_udp import SemtechUdpIngress
from tests.gateway.broker import wait_until
from tests.gateway.harness import GatewayThread, make_config
from tests.gateway.radio import open_down, uplink

EUI_A = "0102030405060708"
EUI_B = "aa555a0000000101"
EUI_C = "00800000a0001234"
REJECTED = "cityedge_ingress_rejected_total"


class Forwarder:
    """A packet forwarder as the specification describes one: an upstream socket for
    PUSH_DATA and TX_ACK, a downstream socket for PULL_DATA that receives PULL_RESP."""

    def __init__(self, eui, server):
        self.eui = bytes.fromhex(eui)
        self.server = server
        self.up = self._socket()
        self.down = self._socket()

    @staticmethod
    def _socket():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        return s

    def close(self):
        self.up.close()
        self.down.close()

    def send(self, data, sock=None):
        (sock or self.up).sendto(data, self.server)

    def push(self, packets, token=0x1234):
        self.send(bytes((2, token >> 8, token & 0xFF, sp.PUSH_DATA)) + self.eui
                  + json.dumps({"rxpk": packets}).encode())

    def pull(self, token=0x4321):
        self.send(bytes((2, token >> 8, token & 0xFF, sp.PULL_DATA)) + self.eui, self.down)
        assert self.recv(self.down) == bytes((2, token >> 8, token & 0xFF, sp.PULL_ACK))

    def tx_ack(self, token, error="NONE"):
        self.send(bytes((2, token >> 8, token & 0xFF, sp.TX_ACK)) + self.eui
                  + json.dumps({"txpk_ack": {"error": error}}).encode())

    def recv(self, sock, timeout=3.0):
        sock.settimeout(timeout)
        try:
            return sock.recv(2048)
        except socket.timeout:
            return None

    def pull_resp(self, timeout=3.0):
        """(token, txpk) of the next PULL_RESP, or None."""
        data = self.recv(self.down, timeout)
        if data is None:
            return None
        assert data[0] == 2 and data[3] == sp.PULL_RESP, data
        return (data[1] << 8) | data[2], json.loads(data[4:])["txpk"]


def rxpk(data, *, tmst=3512348611, lsnr=5.5, rssi=-38, freq=868.1, datr="SF9BW125", **extra):
    pk = {"time": "2013-03-31T16:21:17.528002Z", "tmst": tmst, "chan": 0, "rfch": 0,
          "freq": freq, "stat": 1, "modu": "LORA", "datr": datr, "codr": "4/5", "rssi": rssi,
          "lsnr": lsnr, "size": len(data), "data": base64.b64encode(data).decode()}
    pk.update(extra)
    return pk


def semtech_gateway(tmp_path, inv, euis=(EUI_A,), rx2_freq_hz=869525000, **kw):
    cfg = make_config(tmp_path, inv, semtech=config_mod.SemtechIngressConfig(
        enabled=True, port=0, gateway_euis=euis, rx2_freq_hz=rx2_freq_hz), **kw)
    return GatewayThread(cfg)


def server_of(g):
    ingress = next(i for i in g.gw.ingresses if i.name == "semtech")
    return ("127.0.0.1", ingress.port)


# The PUSH_DATA example of the specification, section 4, as its three rxpk objects stand.
# The first one's data holds '-' next to '+': base64 in neither alphabet (a typo of the
# specification, and so a fine bad-base64 case); the second is FSK; the third is good LoRa.
SPEC_RXPK = json.loads("""[
  {"time":"2013-03-31T16:21:17.528002Z","tmst":3512348611,"chan":2,"rfch":0,
   "freq":866.349812,"stat":1,"modu":"LORA","datr":"SF7BW125","codr":"4/6","rssi":-35,
   "lsnr":5.1,"size":32,"data":"-DS4CGaDCdG+48eJNM3Vai-zDpsR71Pn9CPA9uCON84"},
  {"time":"2013-03-31T16:21:17.530974Z","tmst":3512348514,"chan":9,"rfch":1,"freq":869.1,
   "stat":1,"modu":"FSK","datr":50000,"rssi":-75,"size":16,"data":"VEVTVF9QQUNLRVRfMTIzNA=="},
  {"time":"2013-03-31T16:21:17.532038Z","tmst":3316387610,"chan":0,"rfch":0,
   "freq":863.00981,"stat":1,"modu":"LORA","datr":"SF10BW125","codr":"4/7","rssi":-38,
   "lsnr":5.5,"size":32,"data":"ysgRl452xNLep9S1NTIg2lomKDxUgn3DJ7DE+b00Ass"}]""")


def test_the_specification_example_rxpk_gives_radio_metadata():
    raw, radio = sp.rxpk(SPEC_RXPK[2])
    assert len(raw) == 32 and raw[:2] == bytes.fromhex("cac8")
    assert radio == {"rssi": -38, "snr": 5.5, "frequency": 863009810, "sf": 10, "bw": 125,
                     "cr": "4/7", "tmst": 3316387610, "chan": 0, "rfch": 0,
                     "time": "2013-03-31T16:21:17.532038Z"}
    with pytest.raises(sp.PacketError) as e:
        sp.rxpk(SPEC_RXPK[0])
    assert e.value.reason == "bad_base64"
    with pytest.raises(sp.PacketError) as e:
        sp.rxpk(SPEC_RXPK[1])
    assert e.value.reason == "not_lora"


def test_malformed_datagrams_are_counted_by_reason_and_the_ingress_goes_on(tmp_path, fleet,
                                                                           caplog):
    inv, devices = fleet
    dev = devices[0]
    with semtech_gateway(tmp_path, inv) as g:
        fw = Forwarder(EUI_A, server_of(g))
        stranger = Forwarder("ffffffffffffffff", server_of(g))
        eui = fw.eui
        good = rxpk(uplink(dev, 0))
        cases = {
            "bad_json": bytes((2, 0, 1, 0)) + eui + b'{"rxpk":[{"tmst":1,',
            "bad_version": bytes((1, 0, 2, 0)) + eui + json.dumps({"rxpk": [good]}).encode(),
            "unknown_identifier": bytes((2, 0, 3, 0x07)) + eui,
            "wrong_direction": bytes((2, 0, 4, sp.PUSH_ACK)),
            "too_short": bytes((2, 0, 5, sp.PULL_DATA)) + eui[:3],
            "bad_base64": bytes((2, 0, 6, 0)) + eui + json.dumps(
                {"rxpk": [dict(good, data="not*base64!")]}).encode(),
            "size_mismatch": bytes((2, 0, 7, 0)) + eui + json.dumps(
                {"rxpk": [dict(good, size=good["size"] + 1)]}).encode(),
            "missing_field": bytes((2, 0, 8, 0)) + eui + json.dumps(
                {"rxpk": [{k: v for k, v in good.items() if k != "tmst"}]}).encode(),
            "crc_bad": bytes((2, 0, 9, 0)) + eui + json.dumps(
                {"rxpk": [dict(good, stat=-1)]}).encode(),
            "crc_missing": bytes((2, 0, 10, 0)) + eui + json.dumps(
                {"rxpk": [dict(good, stat=0)]}).encode(),
        }
        for data in cases.values():
            fw.send(data)
        stranger.push([good], token=0x0B0B)  # an EUI that is not in the config
        # A status report alone (the specification's example, section 4): acked, no frame.
        fw.send(bytes((2, 0x0B, 0x0C, 0)) + eui + json.dumps({"stat": {
            "time": "2014-01-12 08:59:28 GMT", "lati": 46.24, "long": 3.2523, "alti": 145,
            "rxnb": 2, "rxok": 2, "rxfw": 2, "ackr": 100.0, "dwnb": 2, "txnb": 2}}).encode())
        fw.push(SPEC_RXPK, token=0x0C0C)  # the specification's example
        fw.push([good], token=0x0D0D)  # and a good frame after all of it
        expected = dict(cases, unknown_gateway=1, not_lora=1)
        expected["bad_base64"] = 2  # the specification's first rxpk too
        wait_until(lambda: sum(g.metric(REJECTED, ingress="semtech", reason=r)
                               for r in expected) == len(cases) + 3, 10, "every rejection")
        for reason in cases:
            assert g.metric(REJECTED, ingress="semtech", reason=reason) == \
                (2 if reason == "bad_base64" else 1), reason
        assert g.metric(REJECTED, ingress="semtech", reason="unknown_gateway") == 1
        assert g.metric(REJECTED, ingress="semtech", reason="not_lora") == 1
        # Acknowledged: every PUSH_DATA of a known gateway with a good header, in order.
        acks = [fw.recv(fw.up, 2) for _ in range(8)]
        assert [a[1:3] for a in acks] == [bytes((0, t)) for t in (1, 6, 7, 8, 9, 10)] + \
            [b"\x0b\x0c", b"\x0c\x0c"]
        assert all(a[0] == 2 and a[3] == sp.PUSH_ACK for a in acks)
        assert fw.recv(fw.up, 2) == bytes((2, 0x0D, 0x0D, sp.PUSH_ACK))
        assert stranger.recv(stranger.up, 0.3) is None  # no ack for a stranger
        wait_until(lambda: g.metric("cityedge_frames_accepted_total", ingress="semtech") == 1,
                   10, "the good frame")
        # The specification's good rxpk reaches the pipeline, which finds no frame of ours.
        assert g.metric("cityedge_frames_total", ingress="semtech") == 2
        assert g.metric("cityedge_frames_rejected_total", reason="bad_frame") == 1
        record = g.call(lambda: g.gw.store.device_records(dev.id))[0]
        assert record["source"] == "semtech"
        assert record["radio"]["receiver"] == EUI_A and record["radio"]["snr"] == 5.5
        fw.close()
        stranger.close()
    lines = [r.getMessage() for r in caplog.records
             if r.getMessage().startswith("datagram_rejected")]
    assert any("reason=unknown_gateway" in line and "gateway=ffffffffffffffff" in line
               for line in lines)
    assert all(" device=" in line and " reason=" in line for line in lines)


def test_downlinks_go_back_as_pull_resp_in_the_receive_windows_and_tx_ack_errors_requeue(
        tmp_path, fleet):
    inv, devices = fleet
    dev = devices[0]
    with semtech_gateway(tmp_path, inv) as g:
        fw = Forwarder(EUI_A, server_of(g))
        fw.pull()
        ttl = g.gw.config.commands.ttl_s
        cmd = g.call(lambda: g.gw.store.add_command(dev.id, "set_interval", 300, ttl))
        # An uplink just before the concentrator's counter wraps: the windows wrap too.
        tmst = 0xFFFFFFFF - 300000
        fw.push([rxpk(uplink(dev, 0), tmst=tmst, datr="SF9BW125", freq=868.3)])
        got = [fw.pull_resp(), fw.pull_resp()]
        assert None not in got, got
        (t1, receipt), (t2, cmd_pk) = got
        for pk in (receipt, cmd_pk):
            assert pk["freq"] == 868.3 and pk["datr"] == "SF9BW125" and pk["codr"] == "4/5"
            assert pk["ipol"] is True and pk["imme"] is False and pk["powe"] == 14
            assert pk["modu"] == "LORA" and pk["size"] == len(base64.b64decode(pk["data"]))
        receipt_frame = base64.b64decode(receipt["data"])
        assert open_down(dev, receipt_frame) == (schema.RECEIPT, {"fcnt": 0, "commands": 1})
        kind, message = open_down(dev, base64.b64decode(cmd_pk["data"]))
        assert kind == schema.COMMAND and message["command_id"] == cmd["command_id"]
        # RX1: one second after the uplink ended; the command one second after the receipt.
        assert receipt["tmst"] == (tmst + 1000000) & 0xFFFFFFFF
        receipt_us = round(airtime.time_on_air_ms(len(receipt_frame), 9, 125, 1) * 1000)
        assert cmd_pk["tmst"] == (tmst + 1000000 + receipt_us + 1000000) & 0xFFFFFFFF
        fw.tx_ack(t1)
        # The gateway could not send the command: it is not counted as an attempt.
        fw.tx_ack(t2, error="COLLISION_PACKET")
        wait_until(lambda: g.metric("cityedge_downlink_errors_total", ingress="semtech",
                                    reason="COLLISION_PACKET") == 1, 5, "the TX_ACK error")
        wait_until(lambda: g.call(lambda: g.gw.store.command(cmd["id"]))["state"] == "queued",
                   5, "the command queued again")
        assert g.call(lambda: g.gw.store.command(cmd["id"]))["attempts"] == 0
        # The next uplink takes it again, and the node's ACK closes it.
        fw.push([rxpk(uplink(dev, 1), tmst=5000000)])
        got = [fw.pull_resp(), fw.pull_resp()]
        assert got[1] is not None and open_down(dev, base64.b64decode(got[1][1]["data"]))[0] \
            == schema.COMMAND
        for token, _ in got:
            fw.tx_ack(token)
        fw.push([rxpk(uplink(dev, 2, schema.ACK, {"command_id": cmd["command_id"],
                                                   "result": command.ACK_OK}),
                      tmst=9000000)])
        assert fw.pull_resp() is not None  # the receipt of the ACK
        wait_until(lambda: g.call(lambda: g.gw.store.command(cmd["id"]))["state"] == "acked",
                   5, "the command acknowledged")
        assert g.metric("cityedge_downlink_errors_total", ingress="semtech",
                        reason="COLLISION_PACKET") == 1
        fw.close()


def test_a_gateway_that_never_sent_pull_data_has_no_downlink_route(tmp_path, fleet):
    inv, devices = fleet
    dev = devices[0]
    with semtech_gateway(tmp_path, inv) as g:
        fw = Forwarder(EUI_A, server_of(g))
        ttl = g.gw.config.commands.ttl_s
        cmd = g.call(lambda: g.gw.store.add_command(dev.id, "reboot", None, ttl))
        fw.push([rxpk(uplink(dev, 0))])
        wait_until(lambda: g.metric("cityedge_downlink_errors_total", ingress="semtech",
                                    reason="no_route") == 2, 5, "receipt and command unsent")
        assert g.metric("cityedge_frames_accepted_total", ingress="semtech") == 1
        assert g.call(lambda: g.gw.store.command(cmd["id"]))["state"] == "queued"
        assert fw.recv(fw.down, 0.2) is None
        fw.close()


def test_same_frame_from_two_gateways_is_stored_once_with_the_best_radio_and_answered_once(
        tmp_path, fleet):
    inv, devices = fleet
    dev = devices[0]
    with semtech_gateway(tmp_path, inv, euis=(EUI_A, EUI_B, EUI_C)) as g:
        a, b, c = (Forwarder(e, server_of(g)) for e in (EUI_A, EUI_B, EUI_C))
        for fw in (a, b, c):
            fw.pull()
        data = uplink(dev, 0)
        # A hears it first but worse; B's copy comes a little later with the better SNR.
        a.push([rxpk(data, tmst=1000000, lsnr=-7.25, rssi=-118)])
        b.push([rxpk(data, tmst=77000000, lsnr=6.5, rssi=-121)])
        got = b.pull_resp()
        assert got is not None and got[1]["tmst"] == 78000000
        assert open_down(dev, base64.b64decode(got[1]["data"]))[0] == schema.RECEIPT
        assert a.pull_resp(timeout=0.6) is None  # one downlink, through the better receiver
        # A third gateway's copy after the window (a slow backhaul): recorded, not answered.
        c.push([rxpk(data, tmst=2000, lsnr=9.0, rssi=-90)])
        assert c.pull_resp(timeout=0.6) is None and b.pull_resp(timeout=0.1) is None
        records = g.call(lambda: g.gw.store.device_records(dev.id))
        assert len(records) == 1
        radio = records[0]["radio"]
        assert radio["receiver"] == EUI_B and radio["snr"] == 6.5 and radio["rssi"] == -121
        assert radio["receivers"] == [EUI_B, EUI_A]
        receivers = g.call(lambda: g.gw.store.frame(dev.id, 0))[1]
        assert [r["receiver"] for r in receivers] == [EUI_B, EUI_A, EUI_C]
        assert g.metric("cityedge_frames_accepted_total", ingress="semtech") == 1
        assert g.metric("cityedge_frames_duplicate_total", ingress="semtech") == 2
        assert g.metric("cityedge_downlinks_total", kind="receipt") == 1
        for fw in (a, b, c):
            fw.close()


_ANY = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(),
                 st.text(max_size=12), st.lists(st.integers(), max_size=3))
_RXPK = st.dictionaries(st.sampled_from(sorted(SPEC_RXPK[2]) + ["x"]), _ANY, max_size=14)


@settings(max_examples=100, deadline=None)
@given(st.one_of(
    st.binary(max_size=64),
    st.builds(lambda ident, body: bytes((2, 0, 1, ident)) + bytes.fromhex(EUI_A) + body,
              st.integers(0, 7), st.binary(max_size=64)),
    st.builds(lambda pks: bytes((2, 0, 1, 0)) + bytes.fromhex(EUI_A)
              + json.dumps({"rxpk": pks}).encode(),
              st.lists(st.one_of(_RXPK, st.builds(lambda d: dict(SPEC_RXPK[2], **d), _RXPK)),
                       max_size=3))))
def test_no_datagram_can_break_the_semtech_ingress(data):
    uplinks = []
    m = metrics_mod.Metrics()

    async def main():
        ingress = SemtechUdpIngress(host="127.0.0.1", port=0, gateway_euis=(EUI_A,),
                                    sink=uplinks.append, metrics=m)
        await ingress.start()
        try:
            ingress.datagram(data, ("127.0.0.1", 9))  # a bug would raise here
        finally:
            await ingress.stop()

    asyncio.run(main())
    for up in uplinks:  # what got through is a LoRa frame with usable metadata
        assert isinstance(up.raw, bytes) and up.radio["receiver"] == EUI_A
        assert 6 <= up.radio["sf"] <= 12 and isinstance(up.radio["tmst"], int)
