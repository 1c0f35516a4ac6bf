"""batch/v1 Jobs and CronJobs on the Kubernetes emulator, through the official Python client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from rotator_sandbox.kubernetes import KubernetesEmulator
from tests.plugins.kubernetes import API_TIMEOUT

T = API_TIMEOUT
NAMESPACE = "batch-jobs"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def pod_template(restart_policy: str | None = "OnFailure") -> client.V1PodTemplateSpec:
    """A pod template whose one container reads the agent Secret."""
    container = client.V1Container(
        name="sync",
        image="registry.example.com/sync:1.0",
        env=[
            client.V1EnvVar(
                name="STS_API_KEY",
                value_from=client.V1EnvVarSource(
                    secret_key_ref=client.V1SecretKeySelector(name="agent", key="STS_API_KEY")
                ),
            )
        ],
    )
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": "sync"}),
        spec=client.V1PodSpec(containers=[container], restart_policy=restart_policy),
    )


def job(name: str = "sync", restart_policy: str | None = "OnFailure") -> client.V1Job:
    """A Job model."""
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(template=pod_template(restart_policy)),
    )


def cron_job(
    name: str = "nightly", schedule: str = "0 3 * * *", labels: dict[str, str] | None = None
) -> client.V1CronJob:
    """A CronJob model."""
    return client.V1CronJob(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1CronJobSpec(
            schedule=schedule,
            job_template=client.V1JobTemplateSpec(spec=client.V1JobSpec(template=pod_template())),
        ),
    )


def status_body(error: ApiException) -> dict[str, Any]:
    """The ``Status`` object of a failed call."""
    assert error.body is not None
    body: dict[str, Any] = json.loads(error.body)
    return body


@pytest.fixture
def batch(kube: KubernetesEmulator, kube_api: client.ApiClient) -> client.BatchV1Api:
    """BatchV1Api on ``kube``, with namespace NAMESPACE created."""
    kube.create_namespace(NAMESPACE)
    return client.BatchV1Api(kube_api)


@pytest.fixture
def http(kube: KubernetesEmulator) -> Iterator[httpx.Client]:
    """A plain httpx client on ``kube``."""
    with httpx.Client(base_url=kube.url, timeout=5.0) as raw:
        yield raw


class TestJobs:
    """Jobs: defaults, the generated selector, validation and immutability."""

    def test_create_generates_the_selector_and_defaults(self, batch: client.BatchV1Api) -> None:
        """The selector is controller-uid=<uid>; template labels and batch defaults are set."""
        created = batch.create_namespaced_job(NAMESPACE, job(), _request_timeout=T)
        uid = created.metadata.uid
        assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
        labels = created.spec.template.metadata.labels
        assert labels["batch.kubernetes.io/job-name"] == "sync"
        assert labels["controller-uid"] == uid
        assert created.metadata.labels == {"app": "sync"}
        assert (created.spec.completions, created.spec.parallelism) == (1, 1)
        assert created.spec.backoff_limit == 6
        assert created.spec.completion_mode == "NonIndexed"
        assert created.metadata.generation == 1

    def test_restart_policy_must_be_on_failure_or_never(self, batch: client.BatchV1Api) -> None:
        """A Job whose pods would restart Always answers 422 with the field's cause."""
        with pytest.raises(ApiException) as caught:
            batch.create_namespaced_job(NAMESPACE, job(restart_policy=None), _request_timeout=T)
        body = status_body(caught.value)
        assert caught.value.status == 422
        assert body["message"] == (
            'Job.batch "sync" is invalid: spec.template.spec.restartPolicy: Unsupported value: '
            '"Always": supported values: "OnFailure", "Never"'
        )
        assert body["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"

    def test_selector_without_manual_selector_is_refused(self, batch: client.BatchV1Api) -> None:
        """A hand-written selector needs spec.manualSelector, as on a real cluster."""
        body = job()
        body.spec.selector = client.V1LabelSelector(match_labels={"app": "sync"})
        with pytest.raises(ApiException) as caught:
            batch.create_namespaced_job(NAMESPACE, body, _request_timeout=T)
        assert "`selector` not auto-generated" in status_body(caught.value)["message"]
        body.spec.manual_selector = True
        created = batch.create_namespaced_job(NAMESPACE, body, _request_timeout=T)
        assert created.spec.selector.match_labels == {"app": "sync"}

    def test_template_is_immutable(self, batch: client.BatchV1Api) -> None:
        """Patching a Job's pod template answers 422 field is immutable."""
        batch.create_namespaced_job(NAMESPACE, job(), _request_timeout=T)
        patch = {"spec": {"template": {"metadata": {"annotations": {"x": "y"}}}}}
        with pytest.raises(ApiException) as caught:
            batch.patch_namespaced_job("sync", NAMESPACE, patch, _request_timeout=T)
        causes = status_body(caught.value)["details"]["causes"]
        assert [c["field"] for c in causes] == ["spec.template"]
        assert causes[0]["message"].endswith("field is immutable")

    def test_status_subresource_is_served(self, batch: client.BatchV1Api) -> None:
        """GET .../jobs/<name>/status answers the Job (status empty: no controller runs)."""
        batch.create_namespaced_job(NAMESPACE, job(), _request_timeout=T)
        read = batch.read_namespaced_job_status("sync", NAMESPACE, _request_timeout=T)
        assert read.metadata.name == "sync"
        assert read.status.active is None

    def test_table_has_the_kubectl_columns(
        self, batch: client.BatchV1Api, http: httpx.Client
    ) -> None:
        """``as=Table`` answers NAME, STATUS, COMPLETIONS, DURATION, AGE (+ wide columns)."""
        batch.create_namespaced_job(NAMESPACE, job(), _request_timeout=T)
        table = http.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", headers={"Accept": TABLE})
        answer = table.json()
        columns = [c["name"] for c in answer["columnDefinitions"] if c["priority"] == 0]
        assert columns == ["Name", "Status", "Completions", "Duration", "Age"]
        assert answer["rows"][0]["cells"][:4] == ["sync", "Running", "0/1", ""]


class TestCronJobs:
    """CronJobs: CRUD, generation, list/watch, validation, forbid and discovery."""

    def test_create_defaults_and_patch_bumps_generation(self, batch: client.BatchV1Api) -> None:
        """Defaults are filled; a schedule change increments metadata.generation."""
        created = batch.create_namespaced_cron_job(NAMESPACE, cron_job(), _request_timeout=T)
        assert created.spec.concurrency_policy == "Allow"
        assert created.spec.successful_jobs_history_limit == 3
        assert created.spec.failed_jobs_history_limit == 1
        assert created.spec.suspend is False
        template = created.spec.job_template.spec.template.spec
        assert template.containers[0].env[0].value_from.secret_key_ref.name == "agent"
        patched = batch.patch_namespaced_cron_job(
            "nightly", NAMESPACE, {"spec": {"schedule": "0 4 * * *"}}, _request_timeout=T
        )
        assert patched.metadata.generation == 2
        assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

    def test_list_by_label_and_delete(self, batch: client.BatchV1Api) -> None:
        """Label selectors pick CronJobs; a delete removes one."""
        batch.create_namespaced_cron_job(
            NAMESPACE, cron_job("a", labels={"team": "x"}), _request_timeout=T
        )
        batch.create_namespaced_cron_job(
            NAMESPACE, cron_job("b", labels={"team": "y"}), _request_timeout=T
        )
        listed = batch.list_namespaced_cron_job(NAMESPACE, label_selector="team=x")
        assert [c.metadata.name for c in listed.items] == ["a"]
        batch.delete_namespaced_cron_job("a", NAMESPACE, _request_timeout=T)
        remaining = batch.list_cron_job_for_all_namespaces(_request_timeout=T)
        assert [c.metadata.name for c in remaining.items] == ["b"]

    def test_watch_reports_changes(self, batch: client.BatchV1Api) -> None:
        """A watch from a resourceVersion sees the later ADDED and MODIFIED events."""
        start = batch.list_namespaced_cron_job(NAMESPACE).metadata.resource_version
        batch.create_namespaced_cron_job(NAMESPACE, cron_job(), _request_timeout=T)
        batch.patch_namespaced_cron_job(
            "nightly", NAMESPACE, {"spec": {"suspend": True}}, _request_timeout=T
        )
        events = []
        for event in watch.Watch().stream(
            batch.list_namespaced_cron_job,
            NAMESPACE,
            resource_version=start,
            timeout_seconds=1,
            _request_timeout=T,
        ):
            events.append((event["type"], event["object"].spec.suspend))
            if len(events) == 2:
                break
        assert events == [("ADDED", False), ("MODIFIED", True)]

    def test_schedule_is_required(self, batch: client.BatchV1Api, http: httpx.Client) -> None:
        """A CronJob without schedule answers 422 spec.schedule: Required value."""
        body = batch.api_client.sanitize_for_serialization(cron_job())
        del body["spec"]["schedule"]
        answer = http.post(f"/apis/batch/v1/namespaces/{NAMESPACE}/cronjobs", json=body)
        assert answer.status_code == 422
        assert answer.json()["message"] == (
            'CronJob.batch "nightly" is invalid: spec.schedule: Required value'
        )

    def test_forbid_list_cronjobs_answers_the_rbac_message(
        self, batch: client.BatchV1Api, kube: KubernetesEmulator
    ) -> None:
        """forbid("list", "cronjobs", ns) is a 403 naming cronjobs.batch and group batch."""
        kube.forbid("list", "cronjobs", NAMESPACE)
        with pytest.raises(ApiException) as caught:
            batch.list_namespaced_cron_job(NAMESPACE, _request_timeout=T)
        assert status_body(caught.value)["message"] == (
            'cronjobs.batch is forbidden: User "system:anonymous" cannot list resource "cronjobs" '
            f'in API group "batch" in the namespace "{NAMESPACE}"'
        )
        assert batch.list_namespaced_job(NAMESPACE, _request_timeout=T).items == []

    def test_discovery_lists_jobs_and_cronjobs(self, kube_api: client.ApiClient) -> None:
        """batch/v1 serves jobs and cronjobs (short name cj) with every CRUD verb and status."""
        resources = client.BatchV1Api(kube_api).get_api_resources(_request_timeout=T)
        by_name = {r.name: r for r in resources.resources}
        assert {"jobs", "cronjobs", "jobs/status", "cronjobs/status"} <= set(by_name)
        assert by_name["cronjobs"].short_names == ["cj"]
        assert set(by_name["jobs"].verbs) == {
            "create",
            "delete",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        }

    def test_create_in_a_missing_namespace_is_refused(self, kube_api: client.ApiClient) -> None:
        """Like every namespaced create, a CronJob in a missing namespace answers 404."""
        with pytest.raises(ApiException) as caught:
            client.BatchV1Api(kube_api).create_namespaced_cron_job(
                "nope", cron_job(), _request_timeout=T
            )
        assert status_body(caught.value)["message"] == 'namespaces "nope" not found'
