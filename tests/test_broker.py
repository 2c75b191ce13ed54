"""The Mosquitto fixture itself: a real broker that the foreign clients reach, restarted on its own data."""

from __future__ import annotations

import pytest

from tests.broker import Broker

pytestmark = pytest.mark.e2e


def test_mosquitto_pub_reaches_mosquitto_sub(broker: Broker) -> None:
    sub = broker.sub("devices/#")
    broker.pub("devices/button", "1")
    sub.expect(r"^devices/button 1$")


def test_a_persistent_session_keeps_its_messages_across_a_restart_of_the_broker(broker: Broker) -> None:
    sub = broker.sub("a/#", "-c", "-i", "keeper", "-q", "1")
    broker.pub("a/1", "one", "-q", "1")
    sub.expect(r"^a/1 one$")
    sub.kill()
    broker.pub("a/2", "two", "-q", "1")  # queued for the absent persistent session
    broker.stop()  # saved to the persistence folder
    broker.start()
    again = broker.sub("a/#", "-c", "-i", "keeper", "-q", "1")
    again.expect(r"^a/2 two$")
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
