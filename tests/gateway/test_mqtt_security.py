# MQTT username/password and TLS against a real Mosquitto: a wrong password or a broker
# certificate from another CA gives a clear error in the log and the forwarder keeps
# retrying; with the right ones every reading accepted meanwhile arrives.
import dataclasses
import logging
import os
import re

import pytest
from protocol import schema

from tests.gateway.broker import Consumer, Mosquitto, wait_until
from tests.gateway.certs import make_ca, make_server_cert
from tests.gateway.harness import GatewayThread, make_config
from tests.gateway.node import WifiNode, fill_reading

ERRORS = "cityedge_forward_errors_total"


def _with_mqtt(cfg, **changes):
    return dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, **changes))


def _send(g, dev, first, n):
    node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp, fcnt=first)
    keys = []
    for i in range(first, first + n):
        assert node.exchange(node.reading(schema.FILL, fill_reading(i)))
        keys.append("%s:%d:0" % (dev.id, i))
    node.close()
    return keys


def _down_reasons(caplog):
    return [r.getMessage() for r in caplog.records if "forwarder_down" in r.getMessage()]


@pytest.fixture
def secured_broker(tmp_path):
    b = Mosquitto(tmp_path / "mosquitto-auth", users={"gw-test": "s3cret pass", "reader": "r"})
    b.start()
    yield b
    b.stop()


def test_wrong_password_is_a_clear_error_and_the_right_one_delivers(tmp_path, secured_broker,
                                                                    fleet, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    inv, devices = fleet
    dev = devices[0]
    consumer = Consumer(secured_broker.port, username="reader", password="r")
    cfg = _with_mqtt(make_config(tmp_path, inv, broker_port=secured_broker.port),
                     username="gw-test", password="wrong")
    with GatewayThread(cfg) as g:
        expected = _send(g, dev, 0, 5)  # accepted and stored while the broker says no
        wait_until(lambda: g.metric(ERRORS, forwarder="mqtt") >= 2, 10, "retries")
    reasons = _down_reasons(caplog)
    assert reasons and all("refused the login as 'gw-test'" in m and
                           re.search(r"(?i)bad user ?name or password|not authori[sz]ed", m)
                           for m in reasons), reasons
    assert consumer.keys() == []

    password_file = tmp_path / "mqtt.pass"
    password_file.write_text("s3cret pass\n")
    os.chmod(password_file, 0o600)
    cfg = _with_mqtt(cfg, password="", password_file=str(password_file))
    with GatewayThread(cfg) as g:
        expected += _send(g, dev, 5, 5)
        wait_until(lambda: set(consumer.keys()) >= set(expected), 15, "every reading")
        assert g.metric(ERRORS, forwarder="mqtt") == 0
    assert sorted(set(consumer.keys())) == sorted(expected)
    consumer.close()


@pytest.fixture
def tls_broker(tmp_path):
    folder = str(tmp_path / "pki")
    ca_file, ca_key, ca_cert = make_ca(folder, "cityedge-test-ca")
    certfile, keyfile = make_server_cert(folder, ca_key, ca_cert)
    b = Mosquitto(tmp_path / "mosquitto-tls", tls=(ca_file, certfile, keyfile))
    b.start()
    b.ca_file = ca_file
    yield b
    b.stop()


def test_tls_with_the_brokers_ca_delivers_and_another_ca_is_a_clear_error(tmp_path, tls_broker,
                                                                          fleet, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    inv, devices = fleet
    dev = devices[0]
    consumer = Consumer(tls_broker.port, ca_file=tls_broker.ca_file)
    other_ca, _, _ = make_ca(str(tmp_path / "other"), "somebody-else")
    cfg = _with_mqtt(make_config(tmp_path, inv, broker_port=tls_broker.port), tls=True,
                     ca_file=other_ca)
    with GatewayThread(cfg) as g:
        expected = _send(g, dev, 0, 5)
        wait_until(lambda: g.metric(ERRORS, forwarder="mqtt") >= 2, 10, "retries")
    reasons = _down_reasons(caplog)
    assert reasons and all("certificate is not trusted" in m and "certificate verify failed" in m
                           and "mqtt.ca_file" in m for m in reasons), reasons
    assert consumer.keys() == []

    cfg = _with_mqtt(cfg, ca_file=tls_broker.ca_file)
    with GatewayThread(cfg) as g:
        expected += _send(g, dev, 5, 5)
        wait_until(lambda: set(consumer.keys()) >= set(expected), 15, "every reading")
        assert g.metric(ERRORS, forwarder="mqtt") == 0
    assert sorted(set(consumer.keys())) == sorted(expected)
    consumer.close()
