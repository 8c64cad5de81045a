"""Pulumi entry point (`main: infra/` in Pulumi.yaml): read and validate the stack's config, build, export."""

import os
from pathlib import Path

import pulumi

# `infra` is installed in the virtualenv (editable, by `make setup`), as Pulumi's dynamic-provider host needs.
from infra.config import OBJECT_KEYS, PROJECT, STRING_KEYS, ConfigError, parse
from infra.program import SecretConfigError, build, openstack_provider, stack_secrets
from infra.sites import SITES, CredentialError, check_credentials


def main() -> None:
    stack = pulumi.get_stack()
    raw = pulumi.Config()
    values = {key: raw.get_object(key) for key in OBJECT_KEYS if raw.get(key) is not None}
    values |= {key: raw.get(key) for key in STRING_KEYS if raw.get(key) is not None}
    try:
        config = parse(stack, values)
    except ConfigError as e:
        raise SystemExit(str(e)) from None  # every problem at once, before any cloud call
    key_file = Path(config.access.public_key_file).expanduser()
    if not key_file.is_file():
        raise SystemExit(f"{PROJECT}:access.public_key_file: {key_file} does not exist; "
                         f"point it at your SSH public key (`pulumi config set --path {PROJECT}:access.public_key_file ...`)")
    try:
        secrets = stack_secrets(raw, config)
        credential = check_credentials(SITES[config.site], os.environ)
    except (SecretConfigError, CredentialError) as e:
        raise SystemExit(str(e)) from None
    provider = openstack_provider(SITES[config.site], *credential)
    for name, value in build(config, key_file.read_text().strip(), secrets, provider).items():
        pulumi.export(name, value)


main()
