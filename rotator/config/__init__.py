"""The configuration file: typed models, YAML loading, ``${ENV}`` and ``*_file`` secrets.

:func:`load_config` turns a YAML file into a frozen :class:`RotatorConfig`; any failure is one
:class:`~rotator.errors.ConfigError` whose message is a readable block naming the file and every
bad field in dotted/indexed form (``keys[1].targets[0].namespace``). Import the public names from
here (``from rotator import config as cfg; cfg.KubernetesSecretTarget``); the modules behind them
each do one job:

- :mod:`~rotator.config.types` — field types: durations, percentages, cron lines, names, paths,
  URLs, secrets, file modes;
- :mod:`~rotator.config.base` — the model base (unknown fields are errors, ``null`` = default)
  and problems raised at their own path; :mod:`~rotator.config.secret_files` — ``*_file`` twins;
- :mod:`~rotator.config.connections` — ``stackstate:``, ``kubernetes:``, ``vault:``;
- :mod:`~rotator.config.delivery` — targets and consumers;
- :mod:`~rotator.config.presets` — the ``preset:`` models and what each expands into;
- :mod:`~rotator.config.policy` — ``defaults:``, overrides, the effective :class:`KeyPolicy`;
- :mod:`~rotator.config.keys` — :class:`ManagedKey` (its preset expanded once, its policy);
- :mod:`~rotator.config.hooks` — ``alerts:``; :mod:`~rotator.config.service` — ``server:``,
  ``leader_election:``, ``lock:``, ``history:``;
- :mod:`~rotator.config.model` — :class:`RotatorConfig` and the checks across keys;
- :mod:`~rotator.config.loading` — reading, YAML, ``${ENV}`` interpolation and its bounds;
- :mod:`~rotator.config.messages` — pydantic errors as readable lines, never quoting values;
- :mod:`~rotator.config.schema` — the JSON Schema for editors.

Conventions users rely on (documented in ``config.example.yaml``):

- Durations are ``90d``, ``12h``, ``30m``, ``45s`` or combinations in that order (``1d12h``);
  a plain integer means seconds. :func:`parse_duration` / :func:`format_duration` (defined in
  :mod:`rotator.timespec`, re-exported here) convert both ways.
- ``rotate_before`` is a duration or a percentage of ``validity`` (``"30%"``).
- ``${VAR}`` is replaced by the environment variable (unset is an error), ``${VAR:-default}``
  falls back when it is unset or empty, ``$${`` writes a literal ``${``. Mapping keys are not
  interpolated.
- Every secret field has a ``*_file`` twin read once at load time (surrounding whitespace
  stripped). An empty inline value counts as not given, so ``${VAR:-}`` makes an inline secret
  optional next to its file twin.
- Relative paths are resolved against the directory of the configuration file (as kubeconfig
  does), ``~`` is expanded.
- ``null`` means "use the default" for every field.
- Cron expressions (schedule, windows) are standard 5-field crontab lines evaluated in UTC, with
  day-of-week 0 or 7 = Sunday; :func:`cron_trigger` builds the APScheduler trigger for one.

Every managed key exposes its effective policy (``key.policy``): the ``defaults:`` section merged
with the key's overrides, percentages resolved, so no code downstream ever reads ``defaults``.
Likewise its preset is expanded once, when the key is validated: ``key.effective_targets``,
``key.effective_consumers``, ``key.adopt_source``, ``key.helm_values`` and ``key.helm_hint``
are what every reader uses.

Error messages never contain a value from the file: only field paths, variable names, file paths
and type names. Secret fields are :class:`pydantic.SecretStr` and :func:`load_config` registers
them with the log redactor (:func:`rotator.secrets.register_secret`).
"""

from __future__ import annotations

from rotator.config.connections import (
    DEFAULT_SERVICE_ACCOUNT_TOKEN,
    KubernetesContextSettings,
    KubernetesSettings,
    SecretReadMode,
    StackStateSettings,
    VaultAppRoleAuth,
    VaultAuth,
    VaultKubernetesAuth,
    VaultSettings,
    VaultTokenAuth,
)
from rotator.config.delivery import (
    CommandConsumer,
    Consumer,
    FileTarget,
    KubernetesSecretTarget,
    KubernetesWorkloadConsumer,
    SyncedSecretConsumer,
    Target,
    VaultKvTarget,
)
from rotator.config.hooks import (
    DEFAULT_ALERT_EVENTS,
    FAILURE_EVENTS,
    AlertHook,
    AlertmanagerAlert,
    CommandAlert,
    PagerDutyAlert,
    SlackAlert,
    WebhookAlert,
)
from rotator.config.keys import ManagedKey
from rotator.config.loading import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_FILE,
    MAX_CONFIG_BYTES,
    MAX_CONFIG_DEPTH,
    MAX_CONFIG_NODES,
    load_config,
    resolve_config_path,
)
from rotator.config.messages import validation_error_lines
from rotator.config.model import RotatorConfig
from rotator.config.policy import (
    DEFAULT_ALERT_BEFORE,
    POLICY_FIELDS,
    Defaults,
    KeyPolicy,
    Schedule,
    resolve_policy,
)
from rotator.config.presets import (
    LinuxAgentPreset,
    OtelCollectorPreset,
    Preset,
    PresetWorkload,
    StackStateK8sAgentPreset,
    SuseObservabilityAgentPreset,
)
from rotator.config.schema import config_json_schema
from rotator.config.secret_files import MAX_SECRET_FILE_BYTES
from rotator.config.service import (
    HistorySettings,
    LeaderElectionSettings,
    LockSettings,
    LockType,
    ServerSettings,
)
from rotator.config.types import MAX_VALIDITY
from rotator.keytypes import KeyKind
from rotator.timespec import (
    Percentage,
    cron_trigger,
    format_duration,
    parse_duration,
    validate_cron,
)

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_ALERT_BEFORE",
    "DEFAULT_ALERT_EVENTS",
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_SERVICE_ACCOUNT_TOKEN",
    "FAILURE_EVENTS",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_DEPTH",
    "MAX_CONFIG_NODES",
    "MAX_SECRET_FILE_BYTES",
    "MAX_VALIDITY",
    "POLICY_FIELDS",
    "AlertHook",
    "AlertmanagerAlert",
    "CommandAlert",
    "CommandConsumer",
    "Consumer",
    "Defaults",
    "FileTarget",
    "HistorySettings",
    "KeyKind",
    "KeyPolicy",
    "KubernetesContextSettings",
    "KubernetesSecretTarget",
    "KubernetesSettings",
    "KubernetesWorkloadConsumer",
    "LeaderElectionSettings",
    "LinuxAgentPreset",
    "LockSettings",
    "LockType",
    "ManagedKey",
    "OtelCollectorPreset",
    "PagerDutyAlert",
    "Percentage",
    "Preset",
    "PresetWorkload",
    "RotatorConfig",
    "Schedule",
    "SecretReadMode",
    "ServerSettings",
    "SlackAlert",
    "StackStateK8sAgentPreset",
    "StackStateSettings",
    "SuseObservabilityAgentPreset",
    "SyncedSecretConsumer",
    "Target",
    "VaultAppRoleAuth",
    "VaultAuth",
    "VaultKubernetesAuth",
    "VaultKvTarget",
    "VaultSettings",
    "VaultTokenAuth",
    "WebhookAlert",
    "config_json_schema",
    "cron_trigger",
    "format_duration",
    "load_config",
    "parse_duration",
    "resolve_config_path",
    "resolve_policy",
    "validate_cron",
    "validation_error_lines",
]
