"""Pulumi entry point (`main: infra/` in Pulumi.yaml): read and validate the stack's config, build, export."""

from pathlib import Path

import pulumi

# `infra` is installed in the virtualenv (editable, by `make setup`), as Pulumi's dynamic-provider host needs.
from infra.config import OBJECT_KEYS, ConfigError, parse
from infra.program import REQUIRED_SECRETS, build


def main() -> None:
    stack = pulumi.get_stack()
    raw = pulumi.Config()
    values = {key: raw.get_object(key) for key in OBJECT_KEYS if raw.get(key) is not None}
    values["site"] = raw.get("site")
    try:
        config = parse(stack, values)
    except ConfigError as e:
        raise SystemExit(str(e)) from None  # every problem at once, before any cloud call
    key_file = Path(config.access.public_key_file).expanduser()
    if not key_file.is_file():
        raise SystemExit(f"transformers-qa:access.public_key_file: {key_file} does not exist; "
                         "point it at your SSH public key (`pulumi config set --path transformers-qa:access.public_key_file ...`)")
    # Cluster secrets: `pulumi config set --secret transformers-qa:db_password ...` (never in git).
    missing = [name for name in REQUIRED_SECRETS if raw.get(name) is None]
    if missing:
        raise SystemExit(f"missing secret config {', '.join('transformers-qa:' + m for m in missing)}; set each with "
                         "`pulumi config set --secret transformers-qa:NAME \"$(openssl rand -base64 24)\"`")
    secrets = {name: raw.require_secret(name) for name in REQUIRED_SECRETS}
    # The release workflow (staging) pushes its promotion commit with this deploy key (write access to the repo).
    if config.environment == "staging":
        if raw.get("gitops_deploy_key") is None:
            raise SystemExit("staging needs transformers-qa:gitops_deploy_key, the private half of a GitHub deploy key with "
                             "write access: `pulumi config set --secret transformers-qa:gitops_deploy_key < deploy_key`")
        secrets["gitops_deploy_key"] = raw.require_secret("gitops_deploy_key")
    for name, value in build(config, key_file.read_text().strip(), secrets).items():
        pulumi.export(name, value)


main()
