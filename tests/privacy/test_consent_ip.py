"""The consent record's IP address: REMOTE_ADDR unless the app runs behind proxies of ours."""

import pytest
from django.test import RequestFactory

from personas.consent import client_ip, record_consent
from personas.models import Capability, WritingPersona

FORWARDED = "203.0.113.9, 198.51.100.7"  # what the client wrote, then what our proxy appended


def request_from(remote="10.0.0.5", forwarded=None):
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().post("/", **headers)


def test_without_trusted_proxies_a_forwarded_header_is_ignored(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request_from(forwarded=FORWARDED)) == "10.0.0.5"
    assert client_ip(request_from(forwarded="not-an-address")) == "10.0.0.5"


def test_behind_one_proxy_the_address_it_appended_is_used(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    # The left entry is whatever the client sent; only the proxy's own entry is trusted.
    assert client_ip(request_from(forwarded=FORWARDED)) == "198.51.100.7"
    assert client_ip(request_from(forwarded="198.51.100.7")) == "198.51.100.7"


def test_behind_two_proxies_the_outer_proxys_entry_is_used(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(request_from(forwarded="1.2.3.4, 203.0.113.9, 10.0.0.2")) == "203.0.113.9"


@pytest.mark.parametrize("forwarded", [None, "", "garbage", "203.0.113.9, not-an-ip"])
def test_a_missing_or_unreadable_header_falls_back_to_remote_addr(settings, forwarded):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request_from(forwarded=forwarded)) == "10.0.0.5"


def test_the_consent_record_stores_the_client_address(settings, owner):
    persona = WritingPersona.objects.create(user=owner, name="p")
    settings.TRUSTED_PROXY_COUNT = 1
    record = record_consent(persona=persona, capability=Capability.VOICE, request=request_from(forwarded=FORWARDED))
    assert record.ip_address == "198.51.100.7"
    settings.TRUSTED_PROXY_COUNT = 0
    record = record_consent(persona=persona, capability=Capability.AVATAR, request=request_from(forwarded=FORWARDED))
    assert record.ip_address == "10.0.0.5"
