"""``rotator rbac``: the least-privilege Kubernetes RBAC and Vault policy a configuration needs.

Everything printed comes from :func:`rotator.permissions.derive_permissions`, the model that
``rotator doctor`` checks against the live systems, so what this grants is exactly what doctor
asks for. Outputs (``-o``):

- ``yaml`` (default): one Role and one RoleBinding per namespace (per kubeconfig context), each
  rule preceded by comments saying why; ``resourceNames`` wherever the configuration names the
  object. The Vault policy and the StackState permissions follow as comments.
- ``helm-values``: ``rbac.rules`` (namespace → rules) for the chart in
  ``deploy/helm/stackstate-key-rotator``. The Lease rule is left out: the chart grants it itself
  in its release namespace, where its rendered configuration puts the Lease.
- ``vault``: only the Vault policy (HCL), for ``vault policy write NAME -``.
- ``json``: all of it for scripts.

Read-only: the command loads the configuration and contacts nothing.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import click
import yaml

from rotator.cli import CliState, cli, config_option

if TYPE_CHECKING:
    from rotator.config import RotatorConfig
    from rotator.permissions import KubernetesPermission, PermissionModel, RoleRule

#: The ServiceAccount bound by default (the chart's and the container image's name).
DEFAULT_SERVICE_ACCOUNT: Final = "stackstate-key-rotator"
#: Its namespace when neither ``--namespace`` nor ``leader_election.namespace`` names one.
DEFAULT_NAMESPACE: Final = "suse-observability"
#: Labels on every object printed.
LABELS: Final = {
    "app.kubernetes.io/name": "stackstate-key-rotator",
    "app.kubernetes.io/component": "rotator",
}
#: Comment lines are wrapped to fit this many columns.
WIDTH: Final = 100
#: The resource the chart grants by itself (leader election in its release namespace).
LEASES: Final = "leases"


@dataclass(frozen=True)
class Subject:
    """The ServiceAccount the RoleBindings bind."""

    name: str
    namespace: str


@dataclass(frozen=True)
class NamespaceRole:
    """The rules of one Role: one (kubeconfig context, namespace) of the model."""

    context: str | None
    namespace: str
    rules: tuple[RoleRule, ...]


@cli.command()
@click.option(
    "--output",
    "-o",
    type=click.Choice(["yaml", "helm-values", "vault", "json"]),
    default="yaml",
    show_default=True,
    help="Role/RoleBinding manifests, the Helm chart's rbac.rules, the Vault policy, or JSON.",
)
@click.option(
    "--service-account",
    metavar="NAME",
    default=DEFAULT_SERVICE_ACCOUNT,
    show_default=True,
    help="ServiceAccount the RoleBindings bind.",
)
@click.option(
    "--namespace",
    metavar="NS",
    default=None,
    help="Namespace of that ServiceAccount (default: leader_election.namespace, else "
    f"{DEFAULT_NAMESPACE}).",
)
@click.option(
    "--context",
    metavar="NAME",
    default=None,
    help="Only the Roles of this kubeconfig context (helm-values default: the configuration's "
    "default context, i.e. the chart's cluster).",
)
@click.option(
    "--optional/--no-optional",
    default=True,
    show_default=True,
    help="Include the optional permissions (create of Secrets and the Lease before they exist, "
    "listing CronJobs and Jobs, Events, Vault's token paths).",
)
@config_option
@click.pass_context
def rbac(
    ctx: click.Context,
    output: str,
    service_account: str,
    namespace: str | None,
    context: str | None,
    optional: bool,
) -> None:
    """Print the least-privilege Kubernetes Roles and Vault policy the configuration needs.

    Reads the configuration only and contacts nothing.

    \b
    Examples:
      rotator --config rotator.yaml rbac | kubectl apply -f -
      rotator rbac -o helm-values > rbac-values.yaml   # for the Helm chart
      rotator rbac -o vault | vault policy write stackstate-key-rotator -
      rotator rbac --service-account rotator --namespace ops --no-optional
    """
    from rotator.permissions import derive_permissions  # noqa: PLC0415 - keep --help fast

    state = ctx.ensure_object(CliState)
    config = state.load_config()
    model = derive_permissions(config)
    subject = Subject(
        service_account, namespace or config.leader_election.namespace or DEFAULT_NAMESPACE
    )
    if output == "vault":
        click.echo(vault_policy(model, include_optional=optional), nl=False)
    elif output == "helm-values":
        chosen = context if context is not None else config.kubernetes.context
        roles = namespace_roles(model, contexts={chosen}, include_optional=optional, leases=False)
        elsewhere = sorted(
            {f"{c or 'default'}/{ns}" for c, ns in model.kubernetes_scopes() if c != chosen}
        )
        if elsewhere:
            click.echo(
                "note: left out, in other kubeconfig contexts (another cluster): "
                f"{', '.join(elsewhere)}; print them with --context NAME -o yaml",
                err=True,
            )
        click.echo(render_helm_values(roles, source=str(state.config_path())), nl=False)
    else:
        roles = namespace_roles(
            model,
            contexts=None if context is None else {context},
            include_optional=optional,
            leases=True,
        )
        if output == "json":
            click.echo(json.dumps(rbac_document(model, roles, subject, optional), indent=2))
        else:
            click.echo(
                render_yaml(model, roles, subject, config, include_optional=optional), nl=False
            )


# -- the Roles ------------------------------------------------------------------------------------


def namespace_roles(
    model: PermissionModel,
    *,
    contexts: Set[str | None] | None = None,
    include_optional: bool = True,
    leases: bool = True,
) -> list[NamespaceRole]:
    """One Role per (context, namespace) of ``model``, in first-seen order.

    ``contexts`` None keeps every kubeconfig context; otherwise only those (None in it: the
    default context). ``leases=False`` leaves the leader-election Lease out (the Helm chart
    grants it itself).
    """
    from rotator.permissions import role_rules  # noqa: PLC0415 - keep --help fast

    roles = []
    for (scope_context, scope_namespace), entries in model.kubernetes_scopes().items():
        if contexts is not None and scope_context not in contexts:
            continue
        kept: Iterable[KubernetesPermission] = (
            p for p in entries if leases or p.resource != LEASES
        )
        rules = role_rules(kept, include_optional=include_optional)
        if rules:
            roles.append(NamespaceRole(scope_context, scope_namespace, tuple(rules)))
    return roles


def role_manifest(role: NamespaceRole, subject: Subject) -> dict[str, Any]:
    """The Role object of ``role`` (named like the ServiceAccount)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": subject.name, "namespace": role.namespace, "labels": dict(LABELS)},
        "rules": [rule.to_dict() for rule in role.rules],
    }


def binding_manifest(role: NamespaceRole, subject: Subject) -> dict[str, Any]:
    """The RoleBinding of ``role`` to the ServiceAccount."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": subject.name, "namespace": role.namespace, "labels": dict(LABELS)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": subject.name},
        "subjects": [
            {"kind": "ServiceAccount", "name": subject.name, "namespace": subject.namespace}
        ],
    }


def vault_policy(model: PermissionModel, *, include_optional: bool = True) -> str:
    """The Vault policy (HCL), or a comment saying none is needed."""
    from rotator.permissions import render_vault_policy  # noqa: PLC0415 - keep --help fast

    if not model.vault:
        return "# stackstate-key-rotator: no vault-kv target, so no Vault policy is needed\n"
    return render_vault_policy(model, include_optional=include_optional)


# -- rendering ------------------------------------------------------------------------------------


def _comment(text: str, indent: str = "") -> list[str]:
    """``text`` as wrapped YAML comment lines."""
    return [
        f"{indent}# {line}"
        for line in textwrap.wrap(text, WIDTH - len(indent) - 2, break_on_hyphens=False)
    ]


def _dump(document: Any, *, flow_leaves: bool = True) -> list[str]:
    """Block YAML lines; with ``flow_leaves`` lists of scalars in flow style (``[get, update]``)."""
    style = None if flow_leaves else False
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=style, width=1000)
    return text.splitlines()


def _rule_lines(rule: RoleRule, indent: str) -> list[str]:
    """One rule as a list item, the reasons above it as comments."""
    lines = _comment("; ".join(rule.why), indent) if rule.why else []
    body = _dump(rule.to_dict())
    lines.append(f"{indent}- {body[0]}")
    lines.extend(f"{indent}  {line}" for line in body[1:])
    return lines


def _where(role: NamespaceRole) -> str:
    where = f"namespace {role.namespace}"
    if role.context is not None:
        where += f", kubeconfig context {role.context} (apply with kubectl --context)"
    return where


def render_yaml(
    model: PermissionModel,
    roles: list[NamespaceRole],
    subject: Subject,
    config: RotatorConfig,
    *,
    include_optional: bool = True,
) -> str:
    """A Role and a RoleBinding per namespace, then the Vault policy and StackState permissions
    as comments. Valid multi-document YAML."""
    lines = [
        "# stackstate-key-rotator: least-privilege RBAC for this configuration (rotator rbac).",
        f"# Bound to ServiceAccount {subject.namespace}/{subject.name}.",
    ]
    if not roles:
        lines.append("# The configuration needs no Kubernetes permission.")
    for role in roles:
        manifest = role_manifest(role, subject)
        lines.append("---")
        lines.extend(_comment(f"The rotator's Role in {_where(role)}."))
        head = {k: v for k, v in manifest.items() if k != "rules"}
        lines.extend(_dump(head, flow_leaves=False))
        lines.append("rules:")
        for rule in role.rules:
            lines.extend(_rule_lines(rule, "  "))
        lines.append("---")
        lines.extend(_dump(binding_manifest(role, subject), flow_leaves=False))
    lines.append("")
    if model.vault:
        lines.extend(
            _comment(
                "Vault policy for the rotator's token (rotator rbac -o vault | vault policy "
                "write stackstate-key-rotator -):"
            )
        )
        policy = vault_policy(model, include_optional=include_optional)
        lines.extend(f"#   {line}".rstrip() for line in policy.splitlines())
        lines.append("")
    for permission in model.stackstate:
        lines.extend(
            _comment(
                f"StackState: the rotator's own credential needs {permission.permission} "
                f"({permission.why}; keys: {', '.join(permission.keys)})."
            )
        )
    if config.leader_election.enabled and not any(
        rule.resources == (LEASES,) for role in roles for rule in role.rules
    ):
        lines.extend(_comment("The leader-election Lease is in another kubeconfig context."))
    return "\n".join(lines) + "\n"


def render_helm_values(roles: list[NamespaceRole], *, source: str) -> str:
    """``rbac.rules`` for the chart's values: namespace → rules, reasons as comments."""
    lines = [
        f"# rotator rbac -o helm-values for {source}: the Roles the configuration needs, as",
        "# values of the chart deploy/helm/stackstate-key-rotator (helm install ... -f FILE).",
        "# The chart adds the leader-election Lease rule in its release namespace itself.",
        "rbac:",
    ]
    if not roles:
        lines.append("  rules: {}")
    else:
        lines.append("  rules:")
        for role in roles:
            lines.append(f"    {_dump(role.namespace)[0]}:")
            for rule in role.rules:
                lines.extend(_rule_lines(rule, "      "))
    return "\n".join(lines) + "\n"


def rbac_document(
    model: PermissionModel, roles: list[NamespaceRole], subject: Subject, include_optional: bool
) -> dict[str, Any]:
    """The ``-o json`` document."""
    return {
        "subject": {"kind": "ServiceAccount", "name": subject.name, "namespace": subject.namespace},
        "kubernetes": [
            {
                "context": role.context,
                "namespace": role.namespace,
                "rules": [rule.to_dict() for rule in role.rules],
                "why": [list(rule.why) for rule in role.rules],
            }
            for role in roles
        ],
        "vault": (
            {
                "namespace": model.vault_namespace,
                "policy": vault_policy(model, include_optional=include_optional),
            }
            if model.vault
            else None
        ),
        "stackstate": [
            {"permission": p.permission, "kind": p.kind, "why": p.why, "keys": list(p.keys)}
            for p in model.stackstate
        ],
    }
