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

One reservation per node type (or flavor), for all the roles that use it: Blazar answers two
reservations of the same node type identically (``resource_properties`` is the same JSON string), so
they could not be told apart. Reservations are matched to requests by parsing that JSON exactly.

create waits for ACTIVE and deletes the lease if it never gets there (no orphan lease keeps the
hardware). ``hours`` is the length of a new lease; ``prolong_hours`` is what has been added to the
running one: raising it prolongs the lease, within the site's rules. A TERMINATED lease reads as gone
(Blazar has deleted its instances and network), so the next ``pulumi up`` makes a new one. Credentials
come from the ``OS_*`` variables of the site's application-credential openrc.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from infra.sites import SITES, CredentialError, check_credentials

API_DATE = "%Y-%m-%d %H:%M"  # what Blazar accepts in requests
ACTIVE_TIMEOUT_S = 1200  # bare-metal leases take a few minutes to start; a busy site longer
POLL_S = 10.0
# Inputs whose change means a different reservation: a new lease. `prolong_hours` is updated in place.
REPLACE_ON = ("site", "name", "reservations")
# A lease in these states has released its resources (blazar/status.py LeaseStatus): the environment is gone.
ENDED = ("TERMINATING", "TERMINATED", "DELETING")
# A VLAN on the site's physical network, of the kind whose nodes may mount the project's shares.
STORAGE_NETWORK = '["and", ["==", "$physical_network", "physnet1"], ["==", "$usage_type", "storage"]]'


class LeaseError(Exception):
    pass


def reservation_key(reservation: dict) -> str:
    """How the cluster finds a reservation in the lease's outputs: one per node type, flavor, or kind."""
    kind = reservation["kind"]
    if kind == "host":
        return f"host:{reservation['node_type']}"
    if kind == "flavor":
        return f"flavor:{reservation['flavor']}"
    return kind


def reservation_request(reservation: dict) -> dict:
    """Blazar's request body for one of our reservations ({kind, count, node_type|flavor_id|network_id|network_name})."""
    kind = reservation["kind"]
    if kind == "host":
        count = int(reservation["count"])
        return {"resource_type": "physical:host", "min": count, "max": count, "hypervisor_properties": "",
                "resource_properties": json.dumps(["==", "$node_type", reservation["node_type"]])}
    if kind == "flavor":
        return {"resource_type": "flavor:instance", "flavor_id": reservation["flavor_id"], "amount": int(reservation["count"]),
                "affinity": None}
    if kind == "floatingip":
        return {"resource_type": "virtual:floatingip", "network_id": reservation["network_id"], "amount": int(reservation["count"])}
    if kind == "network":
        return {"resource_type": "network", "network_name": reservation["network_name"], "network_description": "",
                "resource_properties": STORAGE_NETWORK, "network_properties": ""}
    raise LeaseError(f"unknown reservation kind {kind!r}")


def _properties(reserved: dict):
    """Blazar's `resource_properties`: a JSON string (a host query, or the source flavor of a flavor reservation)."""
    try:
        return json.loads(reserved.get("resource_properties") or "null")
    except json.JSONDecodeError:
        return None


def _matches(request: dict, reserved: dict) -> bool:
    kind = request["resource_type"]
    if kind != reserved.get("resource_type"):
        return False
    if kind == "physical:host":
        return _properties(reserved) == json.loads(request["resource_properties"])
    if kind == "flavor:instance":
        # Blazar replaces flavor_id with its private flavor; the source flavor is the JSON in resource_properties.
        source = _properties(reserved)
        return isinstance(source, dict) and source.get("id") == request["flavor_id"]
    if kind == "network":
        return request["network_name"] == reserved.get("network_name")
    return request["network_id"] == reserved.get("network_id")


def _client(site: str):
    """A python-blazarclient for the stack's site (its Keystone, its region), with an application credential from OS_*."""
    from blazarclient import client as blazar_client
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    try:
        credential_id, secret = check_credentials(SITES[site], os.environ)
    except CredentialError as e:
        raise LeaseError(str(e)) from None
    auth = v3.ApplicationCredential(auth_url=SITES[site].auth_url, application_credential_id=credential_id,
                                    application_credential_secret=secret)
    return blazar_client.Client(1, session=session.Session(auth=auth), service_type="reservation", region_name=site)


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
    """What other resources need: reservation ids and (KVM) reserved flavor ids, by reservation key."""
    reservations = {}
    for wanted in inputs["reservations"]:
        request = reservation_request(wanted)
        found = [r for r in lease.get("reservations", []) if _matches(request, r)]
        key = reservation_key(wanted)
        if len(found) != 1:
            problem = "no reservation" if not found else f"{len(found)} reservations ({', '.join(r['id'] for r in found)})"
            raise LeaseError(f"lease {lease['id']} has {problem} for {key}; expected exactly one")
        reservations[key] = {"id": found[0]["id"], "flavor_id": found[0].get("flavor_id", "")}
    return {**inputs, "lease_id": lease["id"], "lease_name": lease["name"], "status": lease["status"],
            "start_date": lease["start_date"], "end_date": lease["end_date"], "reserved": reservations}


def _parse(date: str) -> datetime:
    """Blazar's answer dates ("2026-11-23T15:00:00.000000", UTC) or its request format."""
    return datetime.fromisoformat(date.replace(" ", "T")).replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def prolonged_end(site: str, end_date: str, hours: int, now: datetime) -> datetime:
    """The new end of a lease that ends at `end_date`, prolonged by `hours` now; LeaseError if the site's rules forbid it."""
    rules, end = SITES[site], _parse(end_date)
    window_opens = end - timedelta(hours=rules.prolong_window_hours)
    if now < window_opens:
        raise LeaseError(f"the lease ends {end:%Y-%m-%d %H:%M} UTC; {site} lets it be prolonged only in its last "
                         f"{rules.prolong_window_hours} h, from {window_opens:%Y-%m-%d %H:%M} UTC: run `pulumi up` again then")
    new_end = end + timedelta(hours=hours)
    latest = now + timedelta(hours=rules.max_prolong_hours)
    if new_end > latest:
        raise LeaseError(f"prolonging by {hours} h would end the lease at {new_end:%Y-%m-%d %H:%M} UTC; {site} allows at most "
                         f"{rules.max_prolong_hours} h from now ({latest:%Y-%m-%d %H:%M} UTC): prolong by less")
    return new_end


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
        # The lease starts now: the nodes are created right after it, in its reservations. Its name carries the
        # start, so a successor never collides with an ended lease that Blazar still lists.
        now = _now()
        name = f"{props['name']}-{now:%Y%m%d-%H%M}"
        end = (now + timedelta(hours=int(props["hours"]))).strftime(API_DATE)
        try:
            lease = client.lease.create(name=name, start="now", end=end, events=[],
                                        reservations=[reservation_request(r) for r in props["reservations"]])
        except _failures() as e:
            raise _explain(e, f"create lease {name!r}") from None
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
                return ReadResult(None, {})  # gone (purged, or deleted by hand)
            raise _explain(e, f"read lease {id_}") from None
        if lease["status"] in ENDED:
            return ReadResult(None, {})  # Blazar deleted its instances and network: a new lease is needed
        return ReadResult(id_, _outputs(props, lease))

    def diff(self, id_: str, olds: dict, news: dict) -> DiffResult:
        replaces = [key for key in REPLACE_ON if olds.get(key) != news.get(key)]
        changes = bool(replaces) or any(olds.get(key) != news.get(key) for key in ("hours", "prolong_hours"))
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict, news: dict) -> UpdateResult:
        if int(news["hours"]) != int(olds["hours"]):
            raise LeaseError(f"lease.hours is the length of a new lease (this one was made with {olds['hours']}); "
                             f"to prolong the running lease, raise lease.prolong_hours (now {olds.get('prolong_hours') or 0})")
        before = int(olds.get("prolong_hours") or 0)
        added = int(news["prolong_hours"]) - before
        if added < 0:
            raise LeaseError(f"lease.prolong_hours can only grow (from {before} to {news['prolong_hours']} "
                             "would end the lease early); to shorten it, destroy and recreate the stack")
        client = _client(news["site"])
        try:
            current = client.lease.get(id_)
            new_end = prolonged_end(news["site"], current["end_date"], added, _now())
            lease = client.lease.update(id_, end_date=new_end.strftime(API_DATE))
        except _failures() as e:
            raise _explain(e, f"prolong lease {id_}") from None
        return UpdateResult(outs=_outputs(news, lease))

    def delete(self, id_: str, props: dict) -> None:
        try:
            _client(props["site"]).lease.delete(id_)
        except _failures() as e:
            if getattr(e, "kwargs", {}).get("code") != 404:  # already gone: nothing to do
                raise _explain(e, f"delete lease {id_}") from None


class Lease(Resource):
    lease_id: pulumi.Output[str]
    lease_name: pulumi.Output[str]
    status: pulumi.Output[str]
    end_date: pulumi.Output[str]
    reserved: pulumi.Output[dict]

    def __init__(self, name: str, *, site: str, lease_name: str, hours: int, prolong_hours: int, reservations: list,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"site": site, "name": lease_name, "hours": hours, "prolong_hours": prolong_hours, "reservations": reservations,
                 "lease_id": None, "lease_name": None, "status": None, "start_date": None, "end_date": None, "reserved": None}
        super().__init__(LeaseProvider(), name, props, opts)
