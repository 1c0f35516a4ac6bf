"""The Kubernetes emulator's label-selected LIST of Secrets, as strict as the API server: what
``labels.Parse`` accepts and refuses (400), numeric requirements, paging a selected list, and
RBAC's 403 when ``list`` is not granted (the ``read: list`` mode of Secret targets needs it)."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rotator_sandbox.kubernetes import KubernetesEmulator
from tests.plugins.kubernetes import API_TIMEOUT

T = API_TIMEOUT
MANAGED = "app.kubernetes.io/managed-by"


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    """CoreV1Api on ``kube``."""
    return client.CoreV1Api(kube_api)


@pytest.fixture(autouse=True)
def _secrets(kube: KubernetesEmulator) -> None:
    for name, labels in (
        ("ours-1", {MANAGED: "stackstate-key-rotator", "generation": "3"}),
        ("ours-2", {MANAGED: "stackstate-key-rotator", "generation": "12"}),
        ("ours-3", {MANAGED: "stackstate-key-rotator"}),
        ("helm", {MANAGED: "Helm", "generation": "x"}),
        ("plain", {}),
    ):
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": "default", "labels": labels},
            }
        )


def names(core: client.CoreV1Api, selector: str, **options: object) -> list[str]:
    """Names of the Secrets of ``default`` a LIST with ``selector`` answers."""
    answer = core.list_namespaced_secret(
        "default", label_selector=selector, _request_timeout=T, **options
    )
    return [s.metadata.name for s in answer.items]


def refusal(core: client.CoreV1Api, selector: str) -> tuple[int, str]:
    """Status and message of a LIST the server refuses."""
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_secret("default", label_selector=selector, _request_timeout=T)
    body = json.loads(caught.value.body)
    assert body["kind"] == "Status"
    return caught.value.status, str(body["message"])


class TestLabelSelectedSecretList:
    """The LIST a Secret target in ``read: list`` mode sends, and its neighbours."""

    def test_the_managed_by_selector_returns_the_rotators_secrets_only(
        self, core: client.CoreV1Api
    ) -> None:
        """A prefixed key with an equality requirement, as the rotator sends it."""
        assert names(core, f"{MANAGED}=stackstate-key-rotator") == ["ours-1", "ours-2", "ours-3"]
        assert names(core, f"{MANAGED}==stackstate-key-rotator") == ["ours-1", "ours-2", "ours-3"]
        assert names(core, f"{MANAGED} in (Helm)") == ["helm"]

    def test_a_selected_list_pages_like_any_list(self, core: client.CoreV1Api) -> None:
        """``limit`` and ``continue`` apply to the selected items."""
        first = core.list_namespaced_secret(
            "default",
            label_selector=f"{MANAGED}=stackstate-key-rotator",
            limit=2,
            _request_timeout=T,
        )
        assert [s.metadata.name for s in first.items] == ["ours-1", "ours-2"]
        rest = core.list_namespaced_secret(
            "default",
            label_selector=f"{MANAGED}=stackstate-key-rotator",
            limit=2,
            _continue=first.metadata._continue,
            _request_timeout=T,
        )
        assert [s.metadata.name for s in rest.items] == ["ours-3"]

    def test_numeric_requirements_compare_integers(self, core: client.CoreV1Api) -> None:
        """``>`` and ``<`` take one integer; labels that are absent or not numbers never match."""
        assert names(core, "generation>5") == ["ours-2"]
        assert names(core, "generation<5") == ["ours-1"]

    @pytest.mark.parametrize(
        ("selector", "fragment"),
        [
            ("Bad_Key_=x", "name part must consist of alphanumeric characters"),
            ("Example.com/app=x", "prefix part a lowercase RFC 1123 subdomain"),
            ("a/b/c=x", "a qualified name must consist of"),
            (f"{'k' * 64}=x", "name part must be no more than 63 characters"),
            ("app=-agent", "a valid label must be an empty string or consist of"),
            (f"app={'v' * 64}", "must be no more than 63 characters"),
            ("app in ()", "for 'in', 'notin' operators, values set can't be empty"),
            ("generation>x", "for 'Gt', 'Lt' operators, the value must be an integer"),
            ("app=(x)", "unable to parse requirement"),
        ],
    )
    def test_invalid_selectors_are_refused_like_the_api_server(
        self, core: client.CoreV1Api, selector: str, fragment: str
    ) -> None:
        """400 BadRequest, ``unable to parse requirement: ...`` naming what is wrong."""
        status, message = refusal(core, selector)
        assert status == 400
        assert message.startswith("unable to parse requirement")
        assert fragment in message

    def test_an_empty_value_is_a_valid_label_value(self, core: client.CoreV1Api) -> None:
        """``app=`` selects objects whose label is empty (none here), not an error."""
        assert names(core, "generation=") == []


class TestListPermission:
    """RBAC without ``list`` on Secrets: the LIST is refused, a GET by name still works."""

    def test_list_forbidden_in_a_namespace_answers_the_rbac_403(
        self, kube: KubernetesEmulator, core: client.CoreV1Api
    ) -> None:
        """The message is the API server's; the same caller may still GET one Secret."""
        kube.forbid("list", "secrets", "default")
        with pytest.raises(ApiException) as caught:
            core.list_namespaced_secret(
                "default", label_selector=f"{MANAGED}=stackstate-key-rotator", _request_timeout=T
            )
        assert caught.value.status == 403
        message = json.loads(caught.value.body)["message"]
        assert 'cannot list resource "secrets" in API group "" in the namespace "default"' in (
            message
        )
        assert core.read_namespaced_secret("ours-1", "default", _request_timeout=T)
