"""The lease provider against Blazar's REST API at the HTTP level (Keystone and Blazar mocked with `responses`).

Every body is shaped as the services answer:
- leases: openstack/blazar doc/api_samples/leases/lease-details-resp.json ({"lease": {id, name, status,
  start_date "2017-12-26T12:00:00.000000", end_date, degraded, user_id, project_id, trust_id, created_at,
  updated_at, reservations, events}}); errors: blazar/api/v1/utils.py ({"error_code", "error_message", "error_name"});
- host reservations: the same sample (min, max, hypervisor_properties, resource_properties as a JSON *string*,
  before_end, missing_resources, resources_changed), with the node-type query python-chi sends
  (ChameleonCloud/python-chi chi/lease.py add_node_reservation: ["==", "$node_type", ...]);
- flavor reservations: openstack/blazar doc/source/cli/flavor-based-instance-reservation.rst (flavor_id is the
  reservation's own private flavor; the source flavor is the JSON string in resource_properties, id a string);
- floating-IP and network reservations: ChameleonCloud/blazar blazar/plugins/floatingips/floatingip_plugin.py
  (network_id, amount, required_floatingips) and blazar/plugins/networks/network_plugin.py (network_name,
  network_description, network_id, resource_properties, network_properties);
- lease states: blazar/status.py LeaseStatus (PENDING, STARTING, ACTIVE, TERMINATING, TERMINATED, ERROR, ...);
- the Keystone token: the Identity v3 API reference, POST /v3/auth/tokens (token.catalog[].endpoints[] with
  interface, region, region_id, url; the token in the X-Subject-Token header).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
import responses

from infra import lease as lease_module
from infra.lease import LeaseError, LeaseProvider, prolonged_end
from support.infra import LEASE_ID, flavor, flavor_reservation, floatingip_reservation, host_reservation, lease_body, network_reservation

AUTH = "https://chi.tacc.chameleoncloud.org:5000/v3"
BLAZAR = "https://chi.tacc.chameleoncloud.org:1234/v1"
OTHER_BLAZAR = "https://kvm.tacc.chameleoncloud.org:1234/v1"
HOST_RES, FIP_RES = "bbbbbbbb-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"
PUBLIC_NET = "0a2a1d2e-5d1b-4f3c-9a0e-3f4f5a6b7c8d"

INPUTS = {
    "site": "CHI@TACC", "name": "transformers-qa-staging", "hours": 72, "prolong_hours": 0,
    "reservations": [
        {"kind": "host", "count": 1, "node_type": "gpu_p100"},
        {"kind": "floatingip", "count": 1, "network_id": PUBLIC_NET},
    ],
}


def lease(status: str, reservation_status: str = "pending") -> dict:
    return lease_body(status, [host_reservation(HOST_RES, "gpu_p100", 1, reservation_status),
                               floatingip_reservation(FIP_RES, PUBLIC_NET, 1) | {"status": reservation_status}])


def blazar_error(code: int, message: str) -> dict:
    return {"error_code": code, "error_message": message, "error_name": code}


def keystone(mock, auth_url: str, endpoints: list[tuple[str, str]]) -> None:
    """The site's token answer, its catalog listing Blazar endpoints per region."""
    token = {"token": {
        "methods": ["application_credential"], "expires_at": "2099-01-01T00:00:00.000000Z",
        "issued_at": "2026-11-23T14:00:00.000000Z", "audit_ids": ["a"],
        "user": {"id": "u", "name": "cc", "domain": {"id": "default", "name": "Default"}},
        "project": {"id": "p", "name": "CHI-123456", "domain": {"id": "default", "name": "Default"}},
        "application_credential": {"id": "cred-id", "name": "qa", "restricted": False},
        "catalog": [{"type": "reservation", "name": "blazar", "id": "svc", "endpoints": [
            {"id": f"e-{region}", "interface": "public", "region": region, "region_id": region, "url": url}
            for region, url in endpoints]}],
    }}
    mock.add(responses.POST, f"{auth_url}/auth/tokens", json=token, status=201, headers={"X-Subject-Token": "tok"})


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OS_AUTH_URL", AUTH)
    monkeypatch.setenv("OS_REGION_NAME", "CHI@TACC")
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_ID", "cred-id")
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_SECRET", "cred-secret")
    monkeypatch.setattr(lease_module, "_now", lambda: datetime(2026, 11, 23, 14, 59, tzinfo=UTC))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        # The client must take its own site's region from the catalog.
        keystone(mock, AUTH, [("KVM@TACC", OTHER_BLAZAR), ("CHI@TACC", BLAZAR)])
        yield mock


def _calls(mock, method: str, url: str) -> list:
    return [c for c in mock.calls if c.request.method == method and c.request.url == url]


def test_create_waits_through_a_slow_start_and_outputs_reservations(api):
    api.add(responses.POST, f"{BLAZAR}/leases", json=lease("PENDING"), status=201)
    for status in ("PENDING", "STARTING", "STARTING"):
        api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease(status))
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease("ACTIVE", "active"))

    result = LeaseProvider(timeout_s=60, poll_s=0).create(dict(INPUTS))

    assert result.id == LEASE_ID
    body = json.loads(_calls(api, "POST", f"{BLAZAR}/leases")[0].request.body)
    # The name carries the start, so a successor never meets an ended lease of the same name.
    assert body["name"] == "transformers-qa-staging-20261123-1459" and body["start_date"] == "now"
    assert body["end_date"] == "2026-11-26 14:59"
    assert body["reservations"] == [
        {"resource_type": "physical:host", "min": 1, "max": 1, "hypervisor_properties": "",
         "resource_properties": '["==", "$node_type", "gpu_p100"]'},
        {"resource_type": "virtual:floatingip", "network_id": PUBLIC_NET, "amount": 1},
    ]
    assert _calls(api, "POST", f"{BLAZAR}/leases")[0].request.headers["X-Auth-Token"] == "tok"
    assert len(_calls(api, "GET", f"{BLAZAR}/leases/{LEASE_ID}")) == 4
    assert result.outs["status"] == "ACTIVE" and result.outs["lease_id"] == LEASE_ID
    assert result.outs["reserved"] == {"host:gpu_p100": {"id": HOST_RES, "flavor_id": ""},
                                       "floatingip": {"id": FIP_RES, "flavor_id": ""}}
    assert not _calls(api, "DELETE", f"{BLAZAR}/leases/{LEASE_ID}")


def test_reservations_are_matched_exactly_in_any_order(api):
    """Prod: control and workers share a node type, in one reservation; Blazar may list reservations in any order."""
    inputs = {**INPUTS, "reservations": [
        {"kind": "host", "count": 3, "node_type": "compute_cascadelake_r"},
        {"kind": "host", "count": 1, "node_type": "gpu_a100_pcie"},
        {"kind": "floatingip", "count": 1, "network_id": PUBLIC_NET},
        {"kind": "network", "count": 1, "network_name": "transformers-qa-prod-storage"},
    ]}
    reserved = [host_reservation("res-cpu", "compute_cascadelake_r", 3), host_reservation("res-gpu", "gpu_a100_pcie", 1),
                floatingip_reservation("res-fip", PUBLIC_NET, 1), network_reservation("res-net", "transformers-qa-prod-storage", "n1")]
    expected = {"host:compute_cascadelake_r": "res-cpu", "host:gpu_a100_pcie": "res-gpu", "floatingip": "res-fip", "network": "res-net"}
    for seed in range(4):
        random.Random(seed).shuffle(reserved)
        api.upsert(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease_body("ACTIVE", list(reserved)))
        outs = LeaseProvider().read(LEASE_ID, inputs).outs
        assert {key: value["id"] for key, value in outs["reserved"].items()} == expected


def test_flavor_ids_are_not_matched_inside_other_fields(api, monkeypatch):
    """KVM: m1.large's id "4" occurs inside m1.xlarge's `"ram": 16384`; only the parsed id may match."""
    large, xlarge = flavor("4", "m1.large", 4, 8192, 40), flavor("5", "m1.xlarge", 8, 16384, 80)
    inputs = {**INPUTS, "site": "KVM@TACC", "reservations": [
        {"kind": "flavor", "count": 1, "flavor": "m1.xlarge", "flavor_id": "5"},
        {"kind": "flavor", "count": 1, "flavor": "m1.large", "flavor_id": "4"},
    ]}
    body = lease_body("ACTIVE", [flavor_reservation("res-xlarge", xlarge, 1), flavor_reservation("res-large", large, 1)])
    kvm_auth, kvm_blazar = "https://kvm.tacc.chameleoncloud.org:5000/v3", "https://kvm.tacc.chameleoncloud.org:1234/v1"
    monkeypatch.setenv("OS_AUTH_URL", kvm_auth)
    monkeypatch.setenv("OS_REGION_NAME", "KVM@TACC")
    keystone(api, kvm_auth, [("KVM@TACC", kvm_blazar)])
    api.add(responses.GET, f"{kvm_blazar}/leases/{LEASE_ID}", json=body)

    outs = LeaseProvider().read(LEASE_ID, inputs).outs
    assert outs["reserved"] == {"flavor:m1.xlarge": {"id": "res-xlarge", "flavor_id": "res-xlarge"},
                                "flavor:m1.large": {"id": "res-large", "flavor_id": "res-large"}}


def test_two_indistinguishable_reservations_are_an_error_not_a_guess(api):
    body = lease_body("ACTIVE", [host_reservation("res-a", "gpu_p100", 1), host_reservation("res-b", "gpu_p100", 1),
                                 floatingip_reservation(FIP_RES, PUBLIC_NET, 1)])
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=body)
    with pytest.raises(LeaseError, match=r"has 2 reservations \(res-a, res-b\) for host:gpu_p100; expected exactly one"):
        LeaseProvider().read(LEASE_ID, dict(INPUTS))


def test_the_client_uses_its_sites_region_of_the_catalog(api):
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease("ACTIVE", "active"))
    assert LeaseProvider().read(LEASE_ID, dict(INPUTS)).id == LEASE_ID
    assert not [c for c in api.calls if c.request.url.startswith(OTHER_BLAZAR)]


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("OS_AUTH_URL", "https://chi.uc.chameleoncloud.org:5000/v3",
     "OS_AUTH_URL is https://chi.uc.chameleoncloud.org:5000/v3, but this stack lives on CHI@TACC"),
    ("OS_REGION_NAME", "CHI@UC", "OS_REGION_NAME is CHI@UC, but this stack lives on CHI@TACC: source the openrc of CHI@TACC"),
])
def test_credentials_of_another_site_are_refused_before_any_call(api, monkeypatch, variable: str, value: str, message: str):
    monkeypatch.setenv(variable, value)
    with pytest.raises(LeaseError, match=message):
        LeaseProvider().create(dict(INPUTS))
    assert not api.calls


@pytest.mark.parametrize("failure", ["error", "timeout"])
def test_a_lease_that_never_becomes_active_is_deleted(api, failure: str):
    api.add(responses.POST, f"{BLAZAR}/leases", json=lease("PENDING"), status=201)
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}",
            json=lease("ERROR", "error") if failure == "error" else lease("STARTING"))
    api.add(responses.DELETE, f"{BLAZAR}/leases/{LEASE_ID}", status=204)

    with pytest.raises(LeaseError) as caught:
        LeaseProvider(timeout_s=0, poll_s=0).create(dict(INPUTS))
    if failure == "error":
        assert "went to ERROR (reservations in error: physical:host, virtual:floatingip)" in str(caught.value)
    else:
        assert f"lease {LEASE_ID} was still STARTING after 0 s" in str(caught.value)
    assert len(_calls(api, "DELETE", f"{BLAZAR}/leases/{LEASE_ID}")) == 1  # no orphan lease


@pytest.mark.parametrize(("status", "message", "hint"), [
    (409, "The lease with name: transformers-qa-staging-20261123-1459 already exists",
     "conflicts with the lease's state or an existing lease name"),
    (400, "Not enough floating IPs available", "too few floating IPs"),
    (500, "Not enough hosts available", "not enough free nodes"),
])
def test_refused_creation_is_one_clear_error_and_leaves_nothing(api, status: int, message: str, hint: str):
    api.add(responses.POST, f"{BLAZAR}/leases", json=blazar_error(status, message), status=status)
    with pytest.raises(LeaseError) as caught:
        LeaseProvider(timeout_s=60, poll_s=0).create(dict(INPUTS))
    assert str(caught.value).startswith(f"Blazar refused to create lease 'transformers-qa-staging-20261123-1459': {message}")
    assert hint in str(caught.value)
    assert not [c for c in api.calls if c.request.method in ("DELETE", "GET")]


def test_a_rejected_credential_is_one_clear_error(api):
    api.replace(responses.POST, f"{AUTH}/auth/tokens", status=401,
                json={"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})
    with pytest.raises(LeaseError, match=r"Blazar refused to create lease .*requires authentication.*\(the application credential was rejected\)"):
        LeaseProvider().create(dict(INPUTS))


def test_the_site_auth_url_is_used_without_os_auth_url(api, monkeypatch):
    monkeypatch.delenv("OS_AUTH_URL")  # CHI@TACC's Keystone is AUTH, which the fixture mocks
    monkeypatch.delenv("OS_REGION_NAME")
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease("ACTIVE", "active"))
    assert LeaseProvider().read(LEASE_ID, dict(INPUTS)).id == LEASE_ID


def test_missing_credentials_are_named_before_any_call(api, monkeypatch):
    monkeypatch.delenv("OS_APPLICATION_CREDENTIAL_SECRET")
    with pytest.raises(LeaseError, match="missing OS_APPLICATION_CREDENTIAL_SECRET: source the application-credential openrc"):
        LeaseProvider().create(dict(INPUTS))
    assert not api.calls


def test_delete_and_read_of_a_lease_already_gone(api):
    gone = blazar_error(404, f"Object with {{'lease_id': '{LEASE_ID}'}} not found")
    api.add(responses.DELETE, f"{BLAZAR}/leases/{LEASE_ID}", json=gone, status=404)
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=gone, status=404)
    provider = LeaseProvider()
    provider.delete(LEASE_ID, dict(INPUTS))  # no error: already deleted
    assert provider.read(LEASE_ID, dict(INPUTS)).id is None


@pytest.mark.parametrize("status", ["TERMINATING", "TERMINATED"])
def test_an_ended_lease_reads_as_gone(api, status: str):
    """At its end Blazar deletes the instances and the network; the lease must be made again, not trusted."""
    ended = lease_body(status, [host_reservation(HOST_RES, "gpu_p100", 1, "deleted"),
                                floatingip_reservation(FIP_RES, PUBLIC_NET, 1) | {"status": "deleted"}])
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=ended)
    assert LeaseProvider().read(LEASE_ID, dict(INPUTS)).id is None


def test_refresh_reads_the_live_lease(api):
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease("ACTIVE", "active"))
    result = LeaseProvider().read(LEASE_ID, dict(INPUTS))
    assert result.id == LEASE_ID and result.outs["end_date"] == "2026-11-26T15:00:00.000000"


def _at(monkeypatch, *when: int) -> None:
    monkeypatch.setattr(lease_module, "_now", lambda: datetime(*when, tzinfo=UTC))


def test_prolonging_adds_the_new_hours_to_the_current_end(api, monkeypatch):
    _at(monkeypatch, 2026, 11, 25, 12, 0)  # 27 h before the end: inside the 48 h window
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease("ACTIVE", "active"))
    prolonged = lease("ACTIVE", "active")
    prolonged["lease"]["end_date"] = "2026-11-29T15:00:00.000000"
    api.add(responses.PUT, f"{BLAZAR}/leases/{LEASE_ID}", json=prolonged)

    provider = LeaseProvider()
    news = {**INPUTS, "prolong_hours": 72}
    diff = provider.diff(LEASE_ID, dict(INPUTS), news)
    assert diff.changes and diff.replaces == []
    result = provider.update(LEASE_ID, dict(INPUTS), news)

    assert json.loads(_calls(api, "PUT", f"{BLAZAR}/leases/{LEASE_ID}")[0].request.body) == {"end_date": "2026-11-29 15:00"}
    assert result.outs["end_date"] == "2026-11-29T15:00:00.000000" and result.outs["prolong_hours"] == 72


def test_prod_at_the_seven_day_maximum_can_still_be_prolonged(api, monkeypatch):
    """The initial length and the prolongation are separate inputs: hours=168 does not cap the lease."""
    _at(monkeypatch, 2026, 11, 26, 3, 0)
    prod = {**INPUTS, "site": "CHI@UC", "hours": 168}
    assert prolonged_end("CHI@UC", "2026-11-26T15:00:00.000000", 150, datetime(2026, 11, 26, 3, tzinfo=UTC)) == \
        datetime(2026, 12, 2, 21, tzinfo=UTC)
    with pytest.raises(LeaseError, match=r"CHI@TACC lets it be prolonged only in its last 48 h"):
        prolonged_end("CHI@TACC", "2026-11-30T15:00:00.000000", 24, datetime(2026, 11, 26, 3, tzinfo=UTC))
    assert LeaseProvider().diff(LEASE_ID, prod, {**prod, "prolong_hours": 150}).replaces == []


@pytest.mark.parametrize(("now", "hours", "message"), [
    ((2026, 11, 23, 16, 0), 24, r"ends 2026-11-26 15:00 UTC; CHI@TACC lets it be prolonged only in its last 48 h, "
                                r"from 2026-11-24 15:00 UTC"),
    ((2026, 11, 25, 12, 0), 170, r"would end the lease at 2026-12-03 17:00 UTC; CHI@TACC allows at most 168 h from now"),
])
def test_prolonging_outside_the_sites_rules_is_refused_before_blazar(api, monkeypatch, now, hours: int, message: str):
    _at(monkeypatch, *now)
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease("ACTIVE", "active"))
    with pytest.raises(LeaseError, match=message):
        LeaseProvider().update(LEASE_ID, dict(INPUTS), {**INPUTS, "prolong_hours": hours})
    assert not _calls(api, "PUT", f"{BLAZAR}/leases/{LEASE_ID}")


def test_prolonging_refused_by_blazar_is_explained(api, monkeypatch):
    _at(monkeypatch, 2026, 11, 25, 12, 0)
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease("ACTIVE", "active"))
    api.add(responses.PUT, f"{BLAZAR}/leases/{LEASE_ID}", status=400,
            json=blazar_error(400, "Lease can only be extended within 172800 seconds of the leases current end time."))
    with pytest.raises(LeaseError, match=r"Blazar refused to prolong lease .*: Lease can only be extended within 172800"):
        LeaseProvider().update(LEASE_ID, dict(INPUTS), {**INPUTS, "prolong_hours": 24})


def test_hours_and_prolong_hours_mean_what_they_say(api):
    provider = LeaseProvider()
    with pytest.raises(LeaseError, match=r"lease.hours is the length of a new lease .* raise lease.prolong_hours \(now 0\)"):
        provider.update(LEASE_ID, dict(INPUTS), {**INPUTS, "hours": 96})
    with pytest.raises(LeaseError, match=r"lease.prolong_hours can only grow \(from 48 to 24"):
        provider.update(LEASE_ID, {**INPUTS, "prolong_hours": 48}, {**INPUTS, "prolong_hours": 24})
    assert not api.calls


def test_diff_replaces_only_when_the_reservations_change():
    provider = LeaseProvider()
    assert provider.diff(LEASE_ID, dict(INPUTS), dict(INPUTS)).changes is False
    more_gpus = {**INPUTS, "reservations": [{**INPUTS["reservations"][0], "count": 2}, INPUTS["reservations"][1]]}
    diff = provider.diff(LEASE_ID, dict(INPUTS), more_gpus)
    assert diff.changes and diff.replaces == ["reservations"] and diff.delete_before_replace
    assert provider.diff(LEASE_ID, dict(INPUTS), {**INPUTS, "site": "CHI@UC"}).replaces == ["site"]


def test_storage_network_reservation_request_and_output(api):
    inputs = {**INPUTS, "reservations": [{"kind": "network", "count": 1, "network_name": "transformers-qa-prod-storage"}]}
    body = lease_body("ACTIVE", [network_reservation("dddddddd-0000-0000-0000-000000000004", "transformers-qa-prod-storage", "net-uuid")])
    api.add(responses.POST, f"{BLAZAR}/leases", json=body, status=201)
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=body)

    result = LeaseProvider(timeout_s=60, poll_s=0).create(inputs)

    sent = json.loads(_calls(api, "POST", f"{BLAZAR}/leases")[0].request.body)["reservations"]
    assert sent == [{"resource_type": "network", "network_name": "transformers-qa-prod-storage", "network_description": "",
                     "resource_properties": '["and", ["==", "$physical_network", "physnet1"], ["==", "$usage_type", "storage"]]',
                     "network_properties": ""}]
    assert result.outs["reserved"] == {"network": {"id": "dddddddd-0000-0000-0000-000000000004", "flavor_id": ""}}
