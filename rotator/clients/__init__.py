"""The layer of API clients: typed wrappers of the external services the rotator talks to.

Each client owns its transport (timeouts, retries, TLS) and translates its library's failures
into :mod:`rotator.errors` exactly once. Clients import no configuration and no engine: the
configuration becomes a client in :mod:`rotator.wiring`, and the engine sees a client only
through the Protocols of :mod:`rotator.engine.ports`.

- :mod:`rotator.clients.stackstate` — the StackState key API (service tokens, ingestion keys);
- :mod:`rotator.clients.kubernetes` — Kubernetes API clients per kubeconfig context;
- :mod:`rotator.clients.vault` — the Vault session (login, renewal) shared by vault-kv targets.

Nothing heavy is imported here: importing ``rotator.clients`` loads no client library.
"""
