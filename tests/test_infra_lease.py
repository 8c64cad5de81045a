"""The lease provider against Blazar's REST API at the HTTP level (Keystone and Blazar mocked with `responses`).

Bodies follow the Blazar v1 API reference (openstack/blazar api-ref and doc/api_samples/leases):
{"lease": {id, name, status, start_date, end_date, reservations: [...]}}; errors are
{"error_code", "error_message", "error_name"}.
"""

from __future__ import annotations

import json

import pytest
import responses

from infra.lease import LeaseError, LeaseProvider

AUTH = "https://chi.tacc.chameleoncloud.org:5000/v3"
BLAZAR = "https://chi.tacc.chameleoncloud.org:1234/v1"
LEASE_ID = "aaaaaaaa-1111-2222-3333-444444444444"
HOST_RES, FIP_RES = "bbbbbbbb-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"

INPUTS = {
    "site": "CHI@TACC", "name": "transformers-qa-staging", "hours": 72,
    "reservations": [
        {"kind": "host", "role": "gpu", "count": 1, "node_type": "gpu_rtx_6000"},
        {"kind": "floatingip", "role": "control", "count": 1, "network_id": "public-net-id"},
    ],
}


def lease(status: str, reservation_status: str = "pending") -> dict:
    return {"lease": {
        "id": LEASE_ID, "name": INPUTS["name"], "status": status, "degraded": False,
        "start_date": "2026-11-23T15:00:00.000000", "end_date": "2026-11-26T15:00:00.000000",
        "created_at": "2026-11-23 14:59:10", "updated_at": None, "user_id": "u", "project_id": "p", "trust_id": "t",
        "reservations": [
            {"id": HOST_RES, "lease_id": LEASE_ID, "status": reservation_status, "resource_type": "physical:host",
             "min": 1, "max": 1, "hypervisor_properties": "", "resource_properties": '["==", "$node_type", "gpu_rtx_6000"]',
             "before_end": "default", "missing_resources": False, "resources_changed": False},
            {"id": FIP_RES, "lease_id": LEASE_ID, "status": reservation_status, "resource_type": "virtual:floatingip",
             "network_id": "public-net-id", "amount": 1, "required_floatingips": []},
        ],
        "events": [],
    }}


def blazar_error(code: int, message: str) -> dict:
    return {"error_code": code, "error_message": message, "error_name": code}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OS_AUTH_URL", AUTH)
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_ID", "cred-id")
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_SECRET", "cred-secret")
    monkeypatch.delenv("OS_REGION_NAME", raising=False)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        token = {"token": {
            "methods": ["application_credential"], "expires_at": "2099-01-01T00:00:00.000000Z",
            "user": {"id": "u", "name": "cc", "domain": {"id": "default", "name": "Default"}},
            "project": {"id": "p", "name": "CHI-123456", "domain": {"id": "default", "name": "Default"}},
            "catalog": [{"type": "reservation", "name": "blazar", "id": "svc", "endpoints": [
                {"id": f"e-{region}", "interface": "public", "region": region, "region_id": region, "url": BLAZAR}
                for region in ("CHI@TACC", "KVM@TACC")]}],
        }}
        mock.add(responses.POST, f"{AUTH}/auth/tokens", json=token, status=201, headers={"X-Subject-Token": "tok"})
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
    assert body["name"] == "transformers-qa-staging" and body["start_date"] == "now"
    assert body["reservations"] == [
        {"resource_type": "physical:host", "min": 1, "max": 1, "hypervisor_properties": "",
         "resource_properties": '["==", "$node_type", "gpu_rtx_6000"]'},
        {"resource_type": "virtual:floatingip", "network_id": "public-net-id", "amount": 1},
    ]
    assert _calls(api, "POST", f"{BLAZAR}/leases")[0].request.headers["X-Auth-Token"] == "tok"
    assert len(_calls(api, "GET", f"{BLAZAR}/leases/{LEASE_ID}")) == 4
    assert result.outs["status"] == "ACTIVE" and result.outs["lease_id"] == LEASE_ID
    assert result.outs["reserved"] == {"host:gpu": {"id": HOST_RES, "flavor_id": ""}, "floatingip:control": {"id": FIP_RES, "flavor_id": ""}}
    assert not _calls(api, "DELETE", f"{BLAZAR}/leases/{LEASE_ID}")


def test_flavor_reservations_output_the_private_flavor_to_launch_with(api, monkeypatch):
    monkeypatch.setenv("OS_AUTH_URL", AUTH)
    inputs = {**INPUTS, "site": "KVM@TACC", "reservations": [{"kind": "flavor", "role": "control", "count": 2, "flavor_id": "m1-large-id"}]}
    reserved = {"id": "cccccccc-0000-0000-0000-000000000003", "status": "active", "resource_type": "flavor:instance",
                "amount": 2, "affinity": None, "flavor_id": "cccccccc-0000-0000-0000-000000000003",
                "resource_properties": '{"id": "m1-large-id", "name": "m1.large", "vcpus": 4}'}
    body = lease("ACTIVE")
    body["lease"]["reservations"] = [reserved]
    api.add(responses.POST, f"{BLAZAR}/leases", json=body, status=201)
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=body)

    result = LeaseProvider(timeout_s=60, poll_s=0).create(inputs)

    sent = json.loads(_calls(api, "POST", f"{BLAZAR}/leases")[0].request.body)["reservations"]
    assert sent == [{"resource_type": "flavor:instance", "flavor_id": "m1-large-id", "amount": 2, "affinity": None}]
    assert result.outs["reserved"]["flavor:control"]["flavor_id"] == reserved["id"]


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
    (409, "Lease with name transformers-qa-staging already exists", "conflicts with the lease's state or an existing lease name"),
    (400, "Not enough floating IPs available", "too few floating IPs"),
    (500, "Not enough hosts available", "not enough free nodes"),
])
def test_refused_creation_is_one_clear_error_and_leaves_nothing(api, status: int, message: str, hint: str):
    api.add(responses.POST, f"{BLAZAR}/leases", json=blazar_error(status, message), status=status)
    with pytest.raises(LeaseError) as caught:
        LeaseProvider(timeout_s=60, poll_s=0).create(dict(INPUTS))
    assert str(caught.value).startswith(f"Blazar refused to create lease 'transformers-qa-staging': {message}")
    assert hint in str(caught.value)
    assert not [c for c in api.calls if c.request.method in ("DELETE", "GET")]


def test_a_rejected_credential_is_one_clear_error(api):
    api.replace(responses.POST, f"{AUTH}/auth/tokens", status=401,
                json={"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})
    with pytest.raises(LeaseError, match=r"Blazar refused to create lease .*requires authentication.*\(the application credential was rejected\)"):
        LeaseProvider().create(dict(INPUTS))


def test_the_site_auth_url_is_used_without_os_auth_url(api, monkeypatch):
    monkeypatch.delenv("OS_AUTH_URL")  # CHI@TACC's Keystone is AUTH, which the fixture mocks
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


def test_refresh_reads_the_live_lease(api):
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease("ACTIVE", "active"))
    result = LeaseProvider().read(LEASE_ID, dict(INPUTS))
    assert result.id == LEASE_ID and result.outs["end_date"] == "2026-11-26T15:00:00.000000"


def test_prolonging_updates_the_end_date_only(api):
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease("ACTIVE", "active"))
    prolonged = lease("ACTIVE", "active")
    prolonged["lease"]["end_date"] = "2026-11-27T15:00:00.000000"
    api.add(responses.PUT, f"{BLAZAR}/leases/{LEASE_ID}", json=prolonged)
    olds = {**INPUTS, "start_date": "2026-11-23T15:00:00.000000"}

    provider = LeaseProvider()
    diff = provider.diff(LEASE_ID, olds, {**INPUTS, "hours": 96})
    assert diff.changes and diff.replaces == []
    result = provider.update(LEASE_ID, olds, {**INPUTS, "hours": 96})

    assert json.loads(_calls(api, "PUT", f"{BLAZAR}/leases/{LEASE_ID}")[0].request.body) == {"end_date": "2026-11-27 15:00"}
    assert result.outs["end_date"] == "2026-11-27T15:00:00.000000"
    with pytest.raises(LeaseError, match="hours can only grow"):
        provider.update(LEASE_ID, olds, {**INPUTS, "hours": 24})


def test_prolonging_too_early_is_explained(api):
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=lease("ACTIVE", "active"))
    api.add(responses.PUT, f"{BLAZAR}/leases/{LEASE_ID}", status=400,
            json=blazar_error(400, "Lease can only be extended within 48 hours of the end date"))
    with pytest.raises(LeaseError, match=r"prolong lease .* only in the last 48 h of a lease\): Lease can only be extended"):
        LeaseProvider().update(LEASE_ID, {**INPUTS, "start_date": "2026-11-23T15:00:00.000000"}, {**INPUTS, "hours": 96})


def test_diff_replaces_only_when_the_reservations_change():
    provider = LeaseProvider()
    assert provider.diff(LEASE_ID, dict(INPUTS), dict(INPUTS)).changes is False
    more_gpus = {**INPUTS, "reservations": [{**INPUTS["reservations"][0], "count": 2}, INPUTS["reservations"][1]]}
    diff = provider.diff(LEASE_ID, dict(INPUTS), more_gpus)
    assert diff.changes and diff.replaces == ["reservations"] and diff.delete_before_replace
    assert provider.diff(LEASE_ID, dict(INPUTS), {**INPUTS, "site": "CHI@UC"}).replaces == ["site"]


def test_storage_network_reservation_request_and_output(api):
    inputs = {**INPUTS, "reservations": [{"kind": "network", "role": "storage", "count": 1, "network_name": "transformers-qa-prod-storage"}]}
    body = lease("ACTIVE", "active")
    body["lease"]["reservations"] = [{
        "id": "dddddddd-0000-0000-0000-000000000004", "status": "active", "resource_type": "network",
        "network_name": "transformers-qa-prod-storage", "network_description": "", "network_id": "net-uuid",
        "resource_properties": '["and", ["==", "$physical_network", "physnet1"], ["==", "$usage_type", "storage"]]'}]
    api.add(responses.POST, f"{BLAZAR}/leases", json=body, status=201)
    api.add(responses.GET, f"{BLAZAR}/leases/{LEASE_ID}", json=body)

    result = LeaseProvider(timeout_s=60, poll_s=0).create(inputs)

    sent = json.loads(_calls(api, "POST", f"{BLAZAR}/leases")[0].request.body)["reservations"]
    assert sent == [{"resource_type": "network", "network_name": "transformers-qa-prod-storage", "network_description": "",
                     "resource_properties": '["and", ["==", "$physical_network", "physnet1"], ["==", "$usage_type", "storage"]]',
                     "network_properties": ""}]
    assert result.outs["reserved"] == {"network:storage": {"id": "dddddddd-0000-0000-0000-000000000004", "flavor_id": ""}}
