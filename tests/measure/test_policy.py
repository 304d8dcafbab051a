from __future__ import annotations

import ipaddress
import subprocess
import sys
import textwrap

import pytest

from latlab.measure.policy import TargetPolicy
from latlab.settings import Settings

API_PORT = 8000
TARGET_PORT = 8008


def refusal(policy: TargetPolicy, address: str, port: int = TARGET_PORT) -> str | None:
    return policy.refusal(ipaddress.ip_address(address), port)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link-local address"),
        ("::ffff:169.254.169.254", "link-local address"),
        ("fe80::1", "link-local address"),
        ("0.0.0.0", "unspecified address"),
        ("::", "unspecified address"),
        ("::ffff:0.0.0.0", "unspecified address"),
        ("224.0.0.1", "multicast address"),
        ("ff02::1", "multicast address"),
    ],
)
def test_builtin_denies(address: str, reason: str) -> None:
    assert refusal(TargetPolicy(), address) == reason


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 (RFC 6052) of 169.254.169.254
        "2002:a9fe:a9fe::1",  # 6to4 of it
        "::a9fe:a9fe",  # IPv4-compatible (deprecated, still routed by some stacks)
        "::ffff:0:a9fe:a9fe",  # IPv4-translated (RFC 2765)
    ],
)
def test_ipv4_embedded_in_ipv6_is_judged_as_that_ipv4(address: str) -> None:
    assert refusal(TargetPolicy(), address) == "link-local address"


@pytest.mark.parametrize("address", ["fd00:ec2::254", "100.100.100.200"])
def test_cloud_metadata_outside_link_local_is_refused(address: str) -> None:
    assert refusal(TargetPolicy(), address) == "cloud metadata service"


def test_broadcast_is_refused_as_broadcast() -> None:
    assert refusal(TargetPolicy(api_port=API_PORT), "255.255.255.255", API_PORT) == (
        "broadcast address"
    )


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "192.168.0.7", "fd00::2"]
)
def test_loopback_and_private_ranges_stay_allowed(address: str) -> None:
    assert refusal(TargetPolicy(api_port=API_PORT), address) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_control_api_port_is_refused_on_loopback(address: str) -> None:
    policy = TargetPolicy(api_port=API_PORT)
    assert refusal(policy, address, API_PORT) == f"port {API_PORT} is LatLab's own control API"
    assert refusal(policy, address, API_PORT + 1) is None


def test_control_api_port_is_allowed_on_another_machine() -> None:
    # TEST-NET-3: never an address of this machine; binding it fails without a packet sent.
    assert refusal(TargetPolicy(api_port=API_PORT), "203.0.113.9", API_PORT) is None


def test_control_api_port_is_refused_on_every_address_of_this_machine() -> None:
    # A network namespace with one extra address on lo: only there is 10.255.0.1 ours.
    code = textwrap.dedent(
        """
        import ipaddress
        from latlab.measure.policy import TargetPolicy
        policy = TargetPolicy(api_port=8000)
        for address in ("10.255.0.1", "10.255.0.2"):
            print(policy.refusal(ipaddress.ip_address(address), 8000))
        """
    )
    script = 'ip link set lo up && ip addr add 10.255.0.1/32 dev lo && exec "$0" -c "$1"'
    command = ["unshare", "-n", "sh", "-c", script, sys.executable, code]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["port 8000 is LatLab's own control API", "None"]


def test_explicit_deny_beats_allow() -> None:
    policy = TargetPolicy(deny=["10.0.0.0/8"], allow=["10.1.0.0/16"])
    assert refusal(policy, "10.1.2.3") == "denied by LATLAB_TARGETS_DENY 10.0.0.0/8"


def test_deny_applies_to_ipv4_mapped_addresses() -> None:
    policy = TargetPolicy(deny=["127.0.0.0/8"])
    assert refusal(policy, "::ffff:127.0.0.1") == "denied by LATLAB_TARGETS_DENY 127.0.0.0/8"
    assert refusal(policy, "::1") is None


def test_allow_beats_builtin_denies() -> None:
    policy = TargetPolicy(allow=["169.254.0.0/16"])
    assert refusal(policy, "169.254.1.1") is None


def test_non_empty_allow_list_refuses_everything_outside_it() -> None:
    policy = TargetPolicy(allow=["127.0.0.0/8"])
    assert refusal(policy, "127.0.0.1") is None
    assert refusal(policy, "10.0.0.1") == "not in LATLAB_TARGETS_ALLOW"
    assert refusal(policy, "::1") == "not in LATLAB_TARGETS_ALLOW"


def test_policy_from_settings() -> None:
    settings = Settings(targets_deny="10.0.0.0/8", targets_allow="10.0.0.0/8,::1/128", port=9000)
    policy = TargetPolicy.from_settings(settings)
    assert refusal(policy, "10.0.0.1") == "denied by LATLAB_TARGETS_DENY 10.0.0.0/8"
    assert refusal(policy, "::1", 9000) is None  # allowed explicitly, the API port too
    assert refusal(policy, "127.0.0.1") == "not in LATLAB_TARGETS_ALLOW"


def test_unknown_api_port_refuses_no_port() -> None:
    assert refusal(TargetPolicy(api_port=0), "127.0.0.1", API_PORT) is None


def test_text_that_is_not_an_address_is_refused() -> None:
    assert TargetPolicy().refusal_of_text("localhost", 80) == "not an IP address"
    assert TargetPolicy().refusal_of_text("fe80::1%lo", 80) == "link-local address"
