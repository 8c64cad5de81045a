"""infra/ under test: the stacks' settings, Blazar lease answers, and the Pulumi program run under mocks."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field

import pulumi
import yaml

import infra.lease
from infra.config import PROJECT, parse
from infra.program import build, openstack_provider
from infra.sites import SITES
from support.paths import ROOT

STACKS = ("dev", "staging", "prod")


def stack_values(stack: str) -> dict:
    """The `transformers-qa:` keys of Pulumi.<stack>.yaml, as the program reads them."""
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith(f"{PROJECT}:")}


LEASE_ID = "aaaaaaaa-1111-2222-3333-444444444444"


def host_reservation(id_: str, node_type: str, count: int, status: str = "active") -> dict:
    return {"id": id_, "lease_id": LEASE_ID, "status": status, "missing_resources": False, "resources_changed": False,
            "resource_id": f"r-{id_}", "resource_type": "physical:host", "min": count, "max": count,
            "hypervisor_properties": "", "resource_properties": json.dumps(["==", "$node_type", node_type]),
            "before_end": "default", "created_at": "2026-11-23 14:59:10", "updated_at": None}


def flavor_reservation(id_: str, flavor: dict, amount: int) -> dict:
    return {"id": id_, "lease_id": LEASE_ID, "resource_id": f"r-{id_}", "resource_type": "flavor:instance", "status": "active",
            "missing_resources": False, "resources_changed": False, "created_at": "2026-11-23 14:59:10",
            "updated_at": "2026-11-23 14:59:10", "vcpus": flavor["vcpus"], "memory_mb": flavor["ram"], "disk_gb": flavor["disk"],
            "amount": amount, "affinity": None, "resource_properties": json.dumps(flavor), "flavor_id": id_,
            "aggregate_id": 6, "server_group_id": None}


def flavor(id_: str, name: str, vcpus: int, ram: int, disk: int) -> dict:
    """A Nova flavor as Blazar copies it into resource_properties (keys as in the Blazar doc above)."""
    return {"id": id_, "name": name, "ram": ram, "disk": disk, "swap": "", "OS-FLV-EXT-DATA:ephemeral": 0,
            "OS-FLV-DISABLED:disabled": False, "vcpus": vcpus, "os-flavor-access:is_public": True, "rxtx_factor": 1.0,
            "extra_specs": {}}


def floatingip_reservation(id_: str, network_id: str, amount: int) -> dict:
    return {"id": id_, "lease_id": LEASE_ID, "status": "active", "missing_resources": False, "resources_changed": False,
            "resource_id": f"r-{id_}", "resource_type": "virtual:floatingip", "network_id": network_id, "amount": amount,
            "required_floatingips": [], "created_at": "2026-11-23 14:59:10", "updated_at": None}


def network_reservation(id_: str, name: str, network_id: str | None) -> dict:
    return {"id": id_, "lease_id": LEASE_ID, "status": "active", "missing_resources": False, "resources_changed": False,
            "resource_id": f"r-{id_}", "resource_type": "network", "network_name": name, "network_description": "",
            "network_id": network_id,
            "resource_properties": '["and", ["==", "$physical_network", "physnet1"], ["==", "$usage_type", "storage"]]',
            "network_properties": "", "created_at": "2026-11-23 14:59:10", "updated_at": None}


def lease_body(status: str, reservations: list[dict], name: str = "transformers-qa-staging-20261123-1459") -> dict:
    return {"lease": {
        "id": LEASE_ID, "name": name, "status": status, "degraded": False,
        "start_date": "2026-11-23T15:00:00.000000", "end_date": "2026-11-26T15:00:00.000000",
        "created_at": "2026-11-23 14:59:10", "updated_at": None, "user_id": "u", "project_id": "p", "trust_id": "t",
        "reservations": reservations,
        "events": [{"id": "e1", "lease_id": LEASE_ID, "status": "UNDONE", "event_type": "end_lease",
                    "time": "2026-11-26T15:00:00.000000", "created_at": "2026-11-23 14:59:10", "updated_at": None}],
    }}


PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtest test@example"


FLOATING_IP = "129.114.108.10"


PUBLIC_NET = "0a2a1d2e-5d1b-4f3c-9a0e-3f4f5a6b7c8d"


STORAGE_NET = "5c0ffee0-1111-4222-8333-944444444444"


SECRETS = {"db_password": "dbsecretvalue0", "db_admin_password": "adminsecret0", "minio_password": "miniosecret0",
           "grafana_password": "grafanasecret0", "model_store_publisher_password": "publishersecret0",
           "mlflow_admin_password": "mlflowadminsecret0", "mlflow_flask_secret_key": "flasksessionkey0",
           "gitops_deploy_key": "fake-deploy-key"}


# Nova: GET /v2.1/flavors/detail (compute api-ref), standard flavor ids are short strings ("4", "5").
FLAVORS = {"m1.large": flavor("4", "m1.large", 4, 8192, 40), "m1.xlarge": flavor("5", "m1.xlarge", 8, 16384, 80)}


def secrets_for(stack: str) -> dict[str, str]:
    needed = {"dev": ("model_store_publisher_password",), "prod": ("model_store_publisher_password",),
              "staging": ("mlflow_admin_password", "mlflow_flask_secret_key", "gitops_deploy_key")}[stack]
    return {k: v for k, v in SECRETS.items() if k in needed or k in ("db_password", "db_admin_password", "minio_password", "grafana_password")}


def blazar_answer(reservations: list[dict], seed: int) -> dict:
    """Blazar's lease answer for the program's request (test_infra_lease names each shape's source), shuffled."""
    made = []
    for n, wanted in enumerate(reservations):
        id_ = f"res-{n}-{wanted['kind']}"
        if wanted["kind"] == "host":
            made.append(host_reservation(id_, wanted["node_type"], wanted["count"]))
        elif wanted["kind"] == "flavor":
            (source,) = [f for f in FLAVORS.values() if f["id"] == wanted["flavor_id"]]
            made.append(flavor_reservation(id_, source, wanted["count"]))
        elif wanted["kind"] == "floatingip":
            made.append(floatingip_reservation(id_, wanted["network_id"], wanted["count"]))
        else:
            made.append(network_reservation(id_, wanted["network_name"], STORAGE_NET))
    random.Random(seed).shuffle(made)
    return lease_body("ACTIVE", made)["lease"]


@dataclass
class Recorder(pulumi.runtime.Mocks):
    seed: int = 0
    resources: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    lease: dict = field(default_factory=dict)  # the Blazar answer the lease's outputs were made from

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        outputs = dict(args.inputs)
        if args.typ == "pulumi-python:dynamic:Resource" and "inventory" in args.inputs:  # the Ansible bootstrap
            outputs["kubeconfig"] = f"apiVersion: v1\nclusters:\n- cluster:\n    server: https://{FLOATING_IP}:6443\n"
        if args.typ == "pulumi-python:dynamic:Resource" and "reservations" in args.inputs:  # the Blazar lease
            self.lease = blazar_answer(args.inputs["reservations"], self.seed)
            outputs.update(infra.lease._outputs(args.inputs, self.lease))
        if args.typ == "openstack:compute/instance:Instance":
            outputs["accessIpV4"] = f"10.52.0.{len(self.of('openstack:compute/instance:Instance')) + 10}"
        if args.typ == "openstack:networking/floatingIp:FloatingIp":
            outputs["address"] = FLOATING_IP
        if args.typ == "openstack:sharedfilesystem/share:Share":
            # Manila: GET /v2/shares/{id}/export_locations (path of a CephFS-NFS export, preferred flag).
            outputs["exportLocations"] = [{"path": f"10.140.81.110:/volumes/_nogroup/{args.name}-uuid/sub", "preferred": True}]
        if args.typ == "openstack:blockstorage/volume:Volume":
            return f"{args.name}-0123456789abcdef0123456789", outputs  # Cinder ids are UUIDs: longer than a virtio serial
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append(args)
        if args.token == "openstack:networking/getNetwork:getNetwork":
            # Neutron GET /v2.0/networks (networking api-ref): id, name, subnets, shared, router:external, mtu.
            name = args.args["name"]
            ids = {"public": PUBLIC_NET, f"{PROJECT}-staging-storage": STORAGE_NET, f"{PROJECT}-prod-storage": STORAGE_NET}
            return {"id": ids.get(name, f"net-{name}"), "name": name, "adminStateUp": "true", "external": name == "public",
                    "shared": "false", "mtu": 1500, "subnets": [f"subnet-{name}"], "allTags": [], "tenantId": "p"}
        if args.token == "openstack:networking/getSubnet:getSubnet":
            # The subnet Blazar makes on a storage network (ChameleonCloud/blazar storage_plugin.py: name
            # "<network>-subnet", from the filesystem subnet pool), as Neutron GET /v2.0/subnets shows it.
            assert args.args["networkId"] == STORAGE_NET
            return {"id": "blazar-subnet-id", "name": args.args["name"], "networkId": STORAGE_NET, "cidr": "10.140.82.0/24",
                    "gatewayIp": "10.140.82.1", "ipVersion": 4, "subnetpoolId": "filesystem-subnet-pool-id",
                    "enableDhcp": True, "dnsNameservers": [], "hostRoutes": [], "tenantId": "p",
                    "allocationPools": [{"start": "10.140.82.2", "end": "10.140.82.254"}], "allTags": []}
        if args.token == "openstack:compute/getFlavor:getFlavor":
            source = FLAVORS[args.args["name"]]
            return {"id": source["id"], "name": source["name"], "ram": source["ram"], "vcpus": source["vcpus"], "disk": source["disk"]}
        if args.token == "openstack:networking/getFloatingIp:getFloatingIp":
            # Neutron GET /v2.0/floatingips?tags=reservation:<id>: the address Chameleon made for the reservation.
            return {"id": "fip-1", "address": FLOATING_IP, "pool": "public", "tags": args.args["tags"], "status": "DOWN",
                    "fixedIp": "", "portId": "", "tenantId": "p"}
        raise AssertionError(f"unexpected call {args.token}")

    def of(self, typ: str) -> list:
        return [r for r in self.resources if r.typ == typ]

    def dynamic(self, name: str):
        (found,) = [r for r in self.resources if r.typ == "pulumi-python:dynamic:Resource" and r.name == name]
        return found

    def reservation_of(self, resource_type: str, match) -> dict:
        (found,) = [r for r in self.lease["reservations"] if r["resource_type"] == resource_type and match(r)]
        return found


def run(stack: str, values: dict | None = None, seed: int = 0, secrets: dict | None = None) -> tuple[Recorder, dict]:
    """Run the program for a stack under mocks; the recorder and the resolved stack outputs."""
    config = parse(stack, values or stack_values(stack))
    mocks = Recorder(seed=seed)
    # Pulumi's runtime runs on the thread's current event loop; earlier tests (asyncio.run) leave none.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    resolved: dict = {}

    @pulumi.runtime.test
    def program():
        provider = openstack_provider(SITES[config.site], "cred-id", "cred-secret")
        outputs = build(config, PUBLIC_KEY, secrets or secrets_for(stack), provider)
        names = list(outputs)
        return pulumi.Output.all(*outputs.values()).apply(lambda vals: resolved.update(zip(names, vals, strict=True)))

    program()
    assert mocks.resources, "the program registered no resources"
    return mocks, resolved
