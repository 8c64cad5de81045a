"""A Chameleon (Blazar) lease as a Pulumi resource: a dynamic provider over python-blazarclient.

Neither the OpenStack Terraform provider nor Pulumi's knows Blazar, so the lease is a dynamic
resource. It reserves everything the environment needs in one lease:

- ``host``: bare-metal nodes of a node type (CHI sites), launched with flavor ``baremetal`` and the
  scheduler hint ``reservation=<reservation id>``;
- ``flavor``: KVM instances of a flavor (KVM@TACC); Blazar makes a private flavor whose id is the
  reservation's ``flavor_id``, which the instances must be launched with;
- ``floatingip``: public addresses, which Chameleon creates tagged ``reservation:<reservation id>``;
- ``network``: a storage network (VLAN) that Blazar creates under ``network_name`` when the lease
  starts; bare-metal nodes on it can mount the project's Manila shares.

create waits for ACTIVE and deletes the lease if it never gets there (no orphan lease keeps the
hardware); update only moves the end date (prolonging; Chameleon allows it in the lease's last 48 h);
any other change replaces the lease. Credentials come from the ``OS_*`` environment variables.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from infra.sites import SITES

API_DATE = "%Y-%m-%d %H:%M"  # what Blazar accepts in requests
ACTIVE_TIMEOUT_S = 1200  # bare-metal leases take a few minutes to start; a busy site longer
POLL_S = 10.0
# Inputs whose change means a different reservation: a new lease. `hours` is updated in place.
REPLACE_ON = ("site", "name", "reservations")
# A VLAN on the site's physical network, of the kind whose nodes may mount the project's shares.
STORAGE_NETWORK = '["and", ["==", "$physical_network", "physnet1"], ["==", "$usage_type", "storage"]]'
REQUIRED_ENV = ("OS_APPLICATION_CREDENTIAL_ID", "OS_APPLICATION_CREDENTIAL_SECRET")


class LeaseError(Exception):
    pass


def reservation_request(reservation: dict) -> dict:
    """Blazar's request body for one of our reservations ({kind, role, count, node_type|flavor_id|network_id|network_name})."""
    kind, count = reservation["kind"], int(reservation["count"])
    if kind == "host":
        return {"resource_type": "physical:host", "min": count, "max": count, "hypervisor_properties": "",
                "resource_properties": f'["==", "$node_type", "{reservation["node_type"]}"]'}
    if kind == "flavor":
        return {"resource_type": "flavor:instance", "flavor_id": reservation["flavor_id"], "amount": count, "affinity": None}
    if kind == "floatingip":
        return {"resource_type": "virtual:floatingip", "network_id": reservation["network_id"], "amount": count}
    if kind == "network":
        return {"resource_type": "network", "network_name": reservation["network_name"], "network_description": "",
                "resource_properties": STORAGE_NETWORK, "network_properties": ""}
    raise LeaseError(f"unknown reservation kind {kind!r}")


def _matches(request: dict, reserved: dict) -> bool:
    if request["resource_type"] != reserved.get("resource_type"):
        return False
    if request["resource_type"] == "physical:host":
        return request["resource_properties"] == reserved.get("resource_properties")
    if request["resource_type"] == "flavor:instance":
        # Blazar replaces flavor_id with its private flavor; the source flavor is kept in resource_properties.
        return request["flavor_id"] in str(reserved.get("resource_properties", ""))
    if request["resource_type"] == "network":
        return request["network_name"] == reserved.get("network_name")
    return request.get("network_id") == reserved.get("network_id")


def _client(site: str):
    """A python-blazarclient for the site, authenticated with an application credential from OS_*."""
    from blazarclient import client as blazar_client
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
    if missing:
        raise LeaseError(f"missing {', '.join(missing)}: source the application-credential openrc of your Chameleon "
                         f"project for {site} (it must be unrestricted to create leases)")
    auth = v3.ApplicationCredential(auth_url=os.environ.get("OS_AUTH_URL", SITES[site].auth_url),
                                    application_credential_id=os.environ["OS_APPLICATION_CREDENTIAL_ID"],
                                    application_credential_secret=os.environ["OS_APPLICATION_CREDENTIAL_SECRET"])
    return blazar_client.Client(1, session=session.Session(auth=auth), service_type="reservation",
                                region_name=os.environ.get("OS_REGION_NAME", site))  # Chameleon: region = site name


def _failures() -> tuple[type[Exception], ...]:
    """What Blazar (an HTTP error) and Keystone (auth, catalog, connection) raise."""
    from blazarclient.exception import BlazarClientException
    from keystoneauth1.exceptions import ClientException

    return BlazarClientException, ClientException


def _explain(e: Exception, what: str) -> LeaseError:
    code = getattr(e, "kwargs", {}).get("code") or getattr(e, "http_status", None)
    text = " ".join(str(e).removeprefix("ERROR: ").split())
    hint = {
        400: "the request was refused (dates, lease length limits or too few floating IPs)",
        401: "the application credential was rejected",
        403: "the credential may not do this (is it unrestricted?)",
        409: "it conflicts with the lease's state or an existing lease name",
        500: "Blazar could not satisfy it (often: not enough free nodes of that type in this window)",
    }.get(code, "")
    return LeaseError(f"Blazar refused to {what}: {text}" + (f" ({hint})" if hint else ""))


def _outputs(inputs: dict, lease: dict) -> dict:
    """What other resources need: reservation ids and (KVM) reserved flavor ids, per role."""
    reservations = {}
    for wanted in inputs["reservations"]:
        request = reservation_request(wanted)
        found = next((r for r in lease.get("reservations", []) if _matches(request, r)), None)
        if found is None:
            raise LeaseError(f"lease {lease['id']} has no reservation for {wanted['kind']} {wanted['role']}")
        reservations[f"{wanted['kind']}:{wanted['role']}"] = {"id": found["id"], "flavor_id": found.get("flavor_id", "")}
    return {**inputs, "lease_id": lease["id"], "status": lease["status"], "start_date": lease["start_date"],
            "end_date": lease["end_date"], "reserved": reservations}


def _end_date(start: str, hours: int) -> str:
    return (datetime.strptime(start[:16].replace("T", " "), API_DATE) + timedelta(hours=int(hours))).strftime(API_DATE)


def wait_active(client, lease_id: str, timeout_s: float, poll_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        lease = client.lease.get(lease_id)
        if lease["status"] == "ACTIVE":
            return lease
        if lease["status"] == "ERROR":
            failed = [r["resource_type"] for r in lease.get("reservations", []) if r.get("status") == "error"]
            raise LeaseError(f"lease {lease_id} went to ERROR (reservations in error: {', '.join(failed) or 'none reported'})")
        if time.monotonic() >= deadline:
            raise LeaseError(f"lease {lease_id} was still {lease['status']} after {timeout_s:g} s; "
                             "the site may be busy: try a later start or fewer nodes")
        time.sleep(poll_s)


class LeaseProvider(ResourceProvider):
    def __init__(self, timeout_s: float = ACTIVE_TIMEOUT_S, poll_s: float = POLL_S) -> None:
        self.timeout_s = timeout_s
        self.poll_s = poll_s

    def create(self, props: dict) -> CreateResult:
        client = _client(props["site"])
        # The lease starts now: the nodes are created right after it, in its reservations.
        now = datetime.now(UTC).strftime(API_DATE)
        try:
            lease = client.lease.create(name=props["name"], start="now", end=_end_date(now, props["hours"]), events=[],
                                        reservations=[reservation_request(r) for r in props["reservations"]])
        except _failures() as e:
            raise _explain(e, f"create lease {props['name']!r}") from None
        try:
            lease = wait_active(client, lease["id"], self.timeout_s, self.poll_s)
            return CreateResult(id_=lease["id"], outs=_outputs(props, lease))
        except BaseException:
            # Nothing may keep hardware reserved for a lease Pulumi does not know about.
            try:
                client.lease.delete(lease["id"])
            except _failures() as e:
                print(f"could not delete failed lease {lease['id']}: {e}; delete it by hand", file=sys.stderr)
            raise

    def read(self, id_: str, props: dict) -> ReadResult:
        try:
            lease = _client(props["site"]).lease.get(id_)
        except _failures() as e:
            if getattr(e, "kwargs", {}).get("code") == 404:
                return ReadResult(None, {})  # gone (expired and purged, or deleted by hand)
            raise _explain(e, f"read lease {id_}") from None
        return ReadResult(id_, _outputs(props, lease))

    def diff(self, id_: str, olds: dict, news: dict) -> DiffResult:
        replaces = [key for key in REPLACE_ON if olds.get(key) != news.get(key)]
        changes = bool(replaces) or olds.get("hours") != news.get("hours")
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict, news: dict) -> UpdateResult:
        if int(news["hours"]) < int(olds["hours"]):
            raise LeaseError(f"lease {id_}: hours can only grow (from {olds['hours']} to {news['hours']} would end it early); "
                             "to shorten a lease, destroy and recreate it")
        client = _client(news["site"])
        try:
            lease = client.lease.update(id_, end_date=_end_date(olds["start_date"], news["hours"]))
        except _failures() as e:
            raise _explain(e, f"prolong lease {id_} (Chameleon allows it only in the last 48 h of a lease)") from None
        return UpdateResult(outs=_outputs(news, lease))

    def delete(self, id_: str, props: dict) -> None:
        try:
            _client(props["site"]).lease.delete(id_)
        except _failures() as e:
            if getattr(e, "kwargs", {}).get("code") != 404:  # already gone: nothing to do
                raise _explain(e, f"delete lease {id_}") from None


class Lease(Resource):
    lease_id: pulumi.Output[str]
    status: pulumi.Output[str]
    end_date: pulumi.Output[str]
    reserved: pulumi.Output[dict]

    def __init__(self, name: str, *, site: str, lease_name: str, hours: int, reservations: list,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"site": site, "name": lease_name, "hours": hours, "reservations": reservations,
                 "lease_id": None, "status": None, "start_date": None, "end_date": None, "reserved": None}
        super().__init__(LeaseProvider(), name, props, opts)
