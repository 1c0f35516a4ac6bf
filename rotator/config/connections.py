"""The connections: how the rotator reaches StackState, Kubernetes and Vault.

Secret fields (tokens, secret ids) are :class:`pydantic.SecretStr` with ``*_file`` twins
(:mod:`rotator.config.secret_files`); :func:`rotator.config.load_config` registers their values
with the log redactor.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from rotator.config.base import ConfigModel, raise_problems
from rotator.config.secret_files import load_secret_twins
from rotator.config.types import (
    ConfigPath,
    ExistingFile,
    HttpUrlStr,
    NonEmptyStr,
    PositiveDuration,
    SecretValue,
    VaultMount,
)

#: The service-account token Kubernetes mounts into every pod.
DEFAULT_SERVICE_ACCOUNT_TOKEN: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class StackStateSettings(ConfigModel):
    """How to reach the StackState / SUSE Observability API and authenticate to it."""

    url: HttpUrlStr
    """Base URL of StackState, e.g. https://observability.example.com (trailing slash removed)."""
    api_path: str = "/api"
    """Path of the API under the base URL."""
    service_token: SecretValue | None = None
    """Service token sent as X-API-Key."""
    service_token_file: ConfigPath | None = None
    """File holding the service token (read at load time)."""
    api_token: SecretValue | None = None
    """Personal API token sent as X-API-Token."""
    api_token_file: ConfigPath | None = None
    """File holding the API token (read at load time)."""
    service_bearer_file: ConfigPath | None = None
    """Kubernetes service-account token file sent as X-API-ServiceBearer, re-read per request."""
    ca_file: ExistingFile | None = None
    """Extra CA bundle (PEM) for TLS; certificates are always verified."""
    timeout: PositiveDuration = timedelta(seconds=10)
    """Timeout of each API request."""
    allow_insecure_http: bool = False
    """Allow an http:// url (test and sandbox set-ups only)."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return load_secret_twins(data, ("service_token", "api_token"), info)

    @field_validator("api_path")
    @classmethod
    def _api_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError('must start with "/", e.g. /api')
        return value.rstrip("/") or "/"

    @model_validator(mode="after")
    def _checks(self) -> StackStateSettings:
        problems = []
        if urlsplit(self.url).scheme == "http" and not self.allow_insecure_http:
            problems.append(("url", "http:// URLs need stackstate.allow_insecure_http: true"))
        if not (self.service_token or self.api_token or self.service_bearer_file):
            problems.append(
                (
                    "service_token",
                    "no credential: give service_token, api_token, their *_file twins, or "
                    "service_bearer_file",
                )
            )
        if problems:
            raise_problems(problems)
        return self

    @property
    def api_url(self) -> str:
        """The URL every API path is appended to: ``url`` + ``api_path``."""
        return self.url + ("" if self.api_path == "/" else self.api_path)


#: How Secret targets are read: one GET per Secret, or one label-selected LIST per namespace.
SecretReadMode = Literal["get", "list"]


class KubernetesContextSettings(ConfigModel):
    """Settings of one kubeconfig context, overriding the ``kubernetes:`` section's."""

    read: SecretReadMode | None = None
    """How Secret targets of this context are read (get or list); default: kubernetes.read."""


class KubernetesSettings(ConfigModel):
    """The default Kubernetes connection; in-cluster configuration when nothing is given."""

    kubeconfig: ExistingFile | None = None
    """Kubeconfig file; null: in-cluster configuration."""
    context: NonEmptyStr | None = None
    """Kubeconfig context; targets and consumers may name another one."""
    foreign_owner_labels: list[NonEmptyStr] = Field(default_factory=list)
    """Extra label names that mark a Secret as owned by someone else (e.g. the label an Argo CD
    installation tracks resources by); Helm, Argo CD, Flux and ownerReferences are built in."""
    read: SecretReadMode = "get"
    """How Secret targets are read each run. get (default, least privilege): one GET per
    Secret, so the Role can name every Secret (resourceNames). list: one LIST per namespace
    selecting the label app.kubernetes.io/managed-by=stackstate-key-rotator (on every Secret the
    rotator creates; others are still read with a GET); needs list on secrets, which exposes
    every Secret of the namespace: use it only for namespaces the rotator owns."""
    contexts: dict[NonEmptyStr, KubernetesContextSettings] = Field(default_factory=dict)
    """Per kubeconfig context (by the name targets give, else kubernetes.context): settings
    that override the ones above, e.g. {prod: {read: list}}."""

    def read_mode(self, context: str | None) -> SecretReadMode:
        """How Secrets of ``context`` (None: ``context`` of this section) are read."""
        name = context or self.context
        override = self.contexts.get(name) if name is not None else None
        if override is not None and override.read is not None:
            return override.read
        return self.read


class VaultTokenAuth(ConfigModel):
    """Vault token authentication."""

    method: Literal["token"]
    token: SecretValue | None = None
    """The Vault token."""
    token_file: ConfigPath | None = None
    """File holding the Vault token (read at load time)."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return load_secret_twins(data, ("token",), info)

    @model_validator(mode="after")
    def _required(self) -> VaultTokenAuth:
        if self.token is None:
            raise_problems([("token", "give token or token_file")])
        return self


class VaultAppRoleAuth(ConfigModel):
    """Vault AppRole authentication."""

    method: Literal["approle"]
    role_id: NonEmptyStr
    """The AppRole role id."""
    secret_id: SecretValue | None = None
    """The AppRole secret id."""
    secret_id_file: ConfigPath | None = None
    """File holding the secret id (read at load time)."""
    mount: VaultMount = "approle"
    """Mount path of the AppRole auth method."""

    @model_validator(mode="before")
    @classmethod
    def _twins(cls, data: Any, info: ValidationInfo) -> Any:
        return load_secret_twins(data, ("secret_id",), info)

    @model_validator(mode="after")
    def _required(self) -> VaultAppRoleAuth:
        if self.secret_id is None:
            raise_problems([("secret_id", "give secret_id or secret_id_file")])
        return self


class VaultKubernetesAuth(ConfigModel):
    """Vault Kubernetes authentication with the pod's service-account token."""

    method: Literal["kubernetes"]
    role: NonEmptyStr
    """Vault role bound to the rotator's service account."""
    jwt_file: ConfigPath = DEFAULT_SERVICE_ACCOUNT_TOKEN
    """Service-account token file, re-read at every login (projected tokens rotate)."""
    mount: VaultMount = "kubernetes"
    """Mount path of the Kubernetes auth method."""


VaultAuth = Annotated[
    VaultTokenAuth | VaultAppRoleAuth | VaultKubernetesAuth, Field(discriminator="method")
]


class VaultSettings(ConfigModel):
    """How to reach Vault; needed by vault-kv targets."""

    url: HttpUrlStr
    """Vault address; http:// is accepted (dev Vault), https:// is verified."""
    namespace: NonEmptyStr | None = None
    """Vault Enterprise namespace."""
    ca_file: ExistingFile | None = None
    """Extra CA bundle (PEM) for TLS."""
    auth: VaultAuth
    """Authentication: method token, approle or kubernetes."""
    timeout: PositiveDuration = timedelta(seconds=10)
    """Timeout of each Vault request."""
