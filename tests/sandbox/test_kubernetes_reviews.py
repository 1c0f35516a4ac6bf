"""SelfSubjectAccessReviews and TokenReviews on the Kubernetes emulator, through the official
Python client (and httpx where the exact answer matters), plus the service-account tokens the
emulator issues."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rotator_sandbox.kubernetes import KubernetesEmulator
from rotator_sandbox.kubernetes_tokens import DEFAULT_ISSUER
from tests.plugins.kubernetes import API_TIMEOUT, KubeClock

T = API_TIMEOUT
MakeApi = Callable[..., client.ApiClient]
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def claims_of(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def access_review(
    verb: str, resource: str, namespace: str = "", group: str = "", name: str = ""
) -> client.V1SelfSubjectAccessReview:
    """A SelfSubjectAccessReview asking about one request."""
    return client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, resource=resource, namespace=namespace, group=group, name=name
            )
        )
    )


def token_review(token: str, audiences: list[str] | None = None) -> client.V1TokenReview:
    """A TokenReview of ``token``."""
    return client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=audiences))


@pytest.fixture
def authz(kube_api: client.ApiClient) -> client.AuthorizationV1Api:
    """AuthorizationV1Api on ``kube``."""
    return client.AuthorizationV1Api(kube_api)


@pytest.fixture
def authn(kube_api: client.ApiClient) -> client.AuthenticationV1Api:
    """AuthenticationV1Api on ``kube``."""
    return client.AuthenticationV1Api(kube_api)


@pytest.fixture
def http(kube: KubernetesEmulator) -> Iterator[httpx.Client]:
    """A plain httpx client on ``kube``."""
    with httpx.Client(base_url=kube.url, timeout=5.0) as raw:
        yield raw


class TestSelfSubjectAccessReview:
    """``kubectl auth can-i``'s question, answered from the same rules as the real 403s."""

    def test_allowed_when_no_rule_forbids(self, authz: client.AuthorizationV1Api) -> None:
        """Without forbid rules every question is answered allowed, with the spec echoed."""
        answer = authz.create_self_subject_access_review(
            access_review("get", "secrets", "ns"), _request_timeout=T
        )
        assert answer.status.allowed is True
        assert answer.spec.resource_attributes.resource == "secrets"
        assert answer.kind == "SelfSubjectAccessReview"

    def test_denied_exactly_where_a_real_request_is_forbidden(
        self,
        authz: client.AuthorizationV1Api,
        kube: KubernetesEmulator,
        kube_api: client.ApiClient,
    ) -> None:
        """forbid("list", "cronjobs", "ns") denies that question and its real request alone."""
        kube.forbid("list", "cronjobs", "ns")

        def allowed(verb: str, namespace: str, group: str = "batch") -> bool:
            review = access_review(verb, "cronjobs", namespace, group=group)
            answer = authz.create_self_subject_access_review(review, _request_timeout=T)
            return bool(answer.status.allowed)

        assert not allowed("list", "ns")
        assert allowed("get", "ns")
        assert allowed("list", "other")
        assert allowed("list", "ns", group="other.example.com")
        with pytest.raises(ApiException) as caught:
            client.BatchV1Api(kube_api).list_namespaced_cron_job("ns", _request_timeout=T)
        assert caught.value.status == 403

    def test_name_scoped_rule_denies_only_that_name(
        self, authz: client.AuthorizationV1Api, kube: KubernetesEmulator
    ) -> None:
        """A rule on one Secret denies questions about that name, not about others."""
        kube.forbid("update", "secrets", "ns", name="agent")
        named = authz.create_self_subject_access_review(
            access_review("update", "secrets", "ns", name="agent"), _request_timeout=T
        )
        other = authz.create_self_subject_access_review(
            access_review("update", "secrets", "ns", name="else"), _request_timeout=T
        )
        assert (named.status.allowed, other.status.allowed) == (False, True)

    def test_wildcard_question_is_denied_when_any_verb_is(
        self, authz: client.AuthorizationV1Api, kube: KubernetesEmulator
    ) -> None:
        """Asking about verb "*" is denied when one verb on that resource is forbidden."""
        kube.forbid("patch", "deployments", "ns")
        answer = authz.create_self_subject_access_review(
            access_review("*", "deployments", "ns", group="apps"), _request_timeout=T
        )
        assert answer.status.allowed is False

    def test_non_resource_question_is_allowed(self, http: httpx.Client) -> None:
        """A nonResourceAttributes question (``can-i get /healthz``) is answered allowed."""
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}},
        }
        answer = http.post(ACCESS_REVIEWS, json=body)
        assert answer.status_code == 201
        assert answer.json()["status"] == {"allowed": True}

    def test_review_without_attributes_is_invalid(self, http: httpx.Client) -> None:
        """A spec with neither attribute set answers 422 naming spec.resourceAttributes."""
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {},
        }
        answer = http.post(ACCESS_REVIEWS, json=body)
        assert answer.status_code == 422
        assert answer.json()["message"] == (
            'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: '
            'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes '
            "must be specified"
        )

    def test_discovery_serves_it_create_only(
        self, kube_api: client.ApiClient, http: httpx.Client
    ) -> None:
        """The group-version lists selfsubjectaccessreviews with verb create; a GET is 405."""
        resources = client.AuthorizationV1Api(kube_api).get_api_resources(_request_timeout=T)
        by_name = {r.name: r for r in resources.resources}
        assert by_name["selfsubjectaccessreviews"].verbs == ["create"]
        assert by_name["selfsubjectaccessreviews"].namespaced is False
        assert http.get(ACCESS_REVIEWS).status_code == 405


class TestServiceAccountTokens:
    """What issue_service_account_token hands out."""

    def test_token_is_jwt_shaped_with_service_account_claims(
        self, kube: KubernetesEmulator
    ) -> None:
        """Three base64url parts: an RS256 header and TokenRequest's claims for ns/sa."""
        token = kube.issue_service_account_token("ns", "sa")
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        claims = claims_of(token)
        assert header["alg"] == "RS256"
        assert claims["sub"] == "system:serviceaccount:ns:sa"
        assert claims["iss"] == DEFAULT_ISSUER
        assert claims["aud"] == [DEFAULT_ISSUER]
        assert claims["kubernetes.io"] == {
            "namespace": "ns",
            "serviceaccount": {"name": "sa", "uid": kube.service_account_uid("ns", "sa")},
        }
        assert claims["exp"] - claims["iat"] == 3600

    def test_tokens_of_one_account_share_its_uid(self, kube: KubernetesEmulator) -> None:
        """Two tokens of the same service account carry the same uid and different jtis."""
        first = claims_of(kube.issue_service_account_token("ns", "sa"))
        second = claims_of(kube.issue_service_account_token("ns", "sa"))
        assert first["kubernetes.io"] == second["kubernetes.io"]
        assert first["jti"] != second["jti"]

    def test_issuing_creates_the_namespace(self, kube: KubernetesEmulator) -> None:
        """A service account's namespace exists once a token was issued in it."""
        kube.issue_service_account_token("vault-auth", "reviewer")
        assert kube.get("namespaces", "", "vault-auth") is not None


class TestTokenReview:
    """TokenReview's verdict on issued tokens, and who may ask for it."""

    def test_issued_token_is_authenticated_as_its_service_account(
        self, authn: client.AuthenticationV1Api, kube: KubernetesEmulator
    ) -> None:
        """The user is system:serviceaccount:ns:sa with its uid, groups and the API audience."""
        token = kube.issue_service_account_token("ns", "sa")
        answer = authn.create_token_review(token_review(token), _request_timeout=T)
        assert answer.status.authenticated is True
        assert answer.status.user.username == "system:serviceaccount:ns:sa"
        assert answer.status.user.uid == kube.service_account_uid("ns", "sa")
        assert answer.status.user.groups == [
            "system:serviceaccounts",
            "system:serviceaccounts:ns",
            "system:authenticated",
        ]
        assert answer.status.audiences == [DEFAULT_ISSUER]

    def test_answer_is_201_with_the_review_echoed(
        self, http: httpx.Client, kube: KubernetesEmulator
    ) -> None:
        """The answer is 201 with kind, apiVersion, the spec sent and a status."""
        token = kube.issue_service_account_token("ns", "sa")
        answer = http.post(TOKEN_REVIEWS, json={"spec": {"token": token}})
        assert answer.status_code == 201
        body = answer.json()
        assert list(body) == ["kind", "apiVersion", "metadata", "spec", "status"]
        assert (body["kind"], body["apiVersion"]) == ("TokenReview", "authentication.k8s.io/v1")
        assert body["metadata"] == {"creationTimestamp": None}

    def test_unknown_token_is_not_authenticated(self, authn: client.AuthenticationV1Api) -> None:
        """A token the emulator never issued: authenticated false, with an error."""
        answer = authn.create_token_review(token_review("not-a-jwt"), _request_timeout=T)
        assert not answer.status.authenticated
        assert "invalid bearer token" in answer.status.error

    def test_tampered_token_is_not_authenticated(
        self, authn: client.AuthenticationV1Api, kube: KubernetesEmulator
    ) -> None:
        """Claims rewritten to another service account break the signature."""
        header, _, signature = kube.issue_service_account_token("ns", "sa").split(".")
        forged = (
            base64.urlsafe_b64encode(
                json.dumps({"sub": "system:serviceaccount:kube-system:admin"}).encode()
            )
            .decode()
            .rstrip("=")
        )
        answer = authn.create_token_review(
            token_review(f"{header}.{forged}.{signature}"), _request_timeout=T
        )
        assert not answer.status.authenticated

    def test_expired_token_is_not_authenticated(
        self,
        make_kube: Callable[..., KubernetesEmulator],
        make_kube_api: MakeApi,
        kube_clock: KubeClock,
        tmp_path: Path,
    ) -> None:
        """Past its expiry (emulator clock) a token no longer authenticates."""
        emulator = make_kube(clock=kube_clock)
        authn = client.AuthenticationV1Api(make_kube_api(emulator.write_kubeconfig(tmp_path / "k")))
        token = emulator.issue_service_account_token("ns", "sa", expiration_seconds=600)
        kube_clock.advance(599)
        assert authn.create_token_review(
            token_review(token), _request_timeout=T
        ).status.authenticated
        kube_clock.advance(1)
        expired = authn.create_token_review(token_review(token), _request_timeout=T)
        assert not expired.status.authenticated
        assert "expired" in expired.status.error

    def test_deleted_service_account_invalidates_its_tokens(
        self, authn: client.AuthenticationV1Api, kube: KubernetesEmulator
    ) -> None:
        """After delete_service_account, old tokens fail and a new token has a new uid."""
        old = kube.issue_service_account_token("ns", "sa")
        old_uid = kube.service_account_uid("ns", "sa")
        kube.delete_service_account("ns", "sa")
        assert not authn.create_token_review(
            token_review(old), _request_timeout=T
        ).status.authenticated
        new = kube.issue_service_account_token("ns", "sa")
        answer = authn.create_token_review(token_review(new), _request_timeout=T)
        assert answer.status.authenticated
        assert answer.status.user.uid != old_uid

    def test_audiences_must_intersect_the_tokens(
        self, authn: client.AuthenticationV1Api, kube: KubernetesEmulator
    ) -> None:
        """A vault-audience token passes a review for vault, and fails one for the API server."""
        token = kube.issue_service_account_token("ns", "sa", audiences=["vault"])
        for_vault = authn.create_token_review(
            token_review(token, ["vault", "other"]), _request_timeout=T
        )
        assert for_vault.status.audiences == ["vault"]
        for_api = authn.create_token_review(token_review(token), _request_timeout=T)
        assert not for_api.status.authenticated
        assert for_api.status.error == (
            f'[invalid bearer token, token audiences ["vault"] is invalid for the target '
            f'audiences ["{DEFAULT_ISSUER}"]]'
        )

    def test_review_without_a_token_is_a_bad_request(self, http: httpx.Client) -> None:
        """A TokenReview with no spec.token answers 400."""
        answer = http.post(TOKEN_REVIEWS, json={"spec": {}})
        assert answer.status_code == 400
        assert answer.json()["message"] == "token is required for TokenReview in authentication"

    def test_reviewer_must_authenticate_when_a_token_is_set(
        self, make_kube: Callable[..., KubernetesEmulator]
    ) -> None:
        """In token mode a review without a bearer is 401; a service-account token may ask."""
        guarded = make_kube(token="admin-token")
        token = guarded.issue_service_account_token("ns", "sa")
        body = {"spec": {"token": token}}
        with httpx.Client(base_url=guarded.url, timeout=5.0) as raw:
            assert raw.post(TOKEN_REVIEWS, json=body).status_code == 401
            wrong = raw.post(TOKEN_REVIEWS, json=body, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            as_itself = raw.post(
                TOKEN_REVIEWS, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert as_itself.status_code == 201
            assert as_itself.json()["status"]["authenticated"] is True
            as_admin = raw.post(
                TOKEN_REVIEWS, json=body, headers={"Authorization": "Bearer admin-token"}
            )
            assert as_admin.status_code == 201

    def test_forbidden_review_names_the_service_account(
        self, make_kube: Callable[..., KubernetesEmulator]
    ) -> None:
        """forbid("create", "tokenreviews") answers the RBAC 403 naming the bearer's user."""
        guarded = make_kube(token="admin-token")
        guarded.forbid("create", "tokenreviews")
        token = guarded.issue_service_account_token("vault", "reviewer")
        answer = httpx.post(
            f"{guarded.url}{TOKEN_REVIEWS}",
            json={"spec": {"token": token}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5.0,
        )
        assert answer.status_code == 403
        assert answer.json()["message"] == (
            "tokenreviews.authentication.k8s.io is forbidden: User "
            '"system:serviceaccount:vault:reviewer" cannot create resource "tokenreviews" in API '
            'group "authentication.k8s.io" at the cluster scope'
        )

    def test_service_account_token_authenticates_ordinary_requests(
        self, make_kube: Callable[..., KubernetesEmulator]
    ) -> None:
        """An issued token is a bearer like any other: a 403 then names its service account."""
        guarded = make_kube(token="admin-token")
        guarded.forbid("list", "secrets", "ns")
        token = guarded.issue_service_account_token("ns", "sa")
        answer = httpx.get(
            f"{guarded.url}/api/v1/namespaces/ns/secrets",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5.0,
        )
        assert answer.status_code == 403
        assert 'User "system:serviceaccount:ns:sa" cannot list' in answer.json()["message"]
