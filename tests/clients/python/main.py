"""Drives mxjob-server through the Python client generated from openapi/mxjob.json.

Usage: main.py SERVER_URL SEED_JSON

`cargo xtask clients` generates the `mxjob_client` package into
target/clients/python; tests/tests/clients.rs runs this program with that
directory on PYTHONPATH. It prints one `ok: STEP ...` line per step and
exits non-zero at the first answer it did not expect.
"""

import json
import sys

from mxjob_client import ApiClient, Configuration, MXJob, MXJobPatch, MxjobsApi
from mxjob_client.exceptions import ApiException

LANGUAGE = "python"


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


def step(name, detail):
    print(f"ok: {name} {detail}", flush=True)


def call(what, method, *args, **kwargs):
    """Calls the client, failing with the server's answer if it is an error."""
    try:
        return method(*args, **kwargs)
    except ApiException as e:
        fail(f"{what} answered {e.status}: {e.body}")


def new_job(seed_path):
    """The seed without its status and the metadata the server owns."""
    with open(seed_path, encoding="utf-8") as f:
        seed = json.load(f)
    seed.pop("status", None)
    seed["metadata"] = {
        "name": seed["metadata"]["name"],
        "namespace": seed["metadata"]["namespace"],
    }
    return MXJob.from_dict(seed)


def main():
    if len(sys.argv) != 3:
        fail("usage: main.py SERVER_URL SEED_JSON")
    url, seed_path = sys.argv[1], sys.argv[2]
    job = new_job(seed_path)
    name, namespace = job.metadata.name, job.metadata.namespace
    api = MxjobsApi(ApiClient(Configuration(host=url)))

    answer = call("create", api.create_mxjob_with_http_info, namespace, job)
    created = answer.data
    expect(answer.status_code == 201, f"create answered {answer.status_code}")
    expect(created.metadata.name == name, f"created {created.metadata.name}")
    expect(created.metadata.generation == 1, f"generation {created.metadata.generation}")
    step("create", f"{name} resourceVersion={created.metadata.resource_version}")

    read = call("read", api.read_mxjob, name, namespace)
    expect(read.metadata.uid == created.metadata.uid, "read returned another uid")
    expect(
        read.spec.ttl_seconds_after_finished == job.spec.ttl_seconds_after_finished,
        f"read ttlSecondsAfterFinished={read.spec.ttl_seconds_after_finished}",
    )
    step("read", f"{name} uid={read.metadata.uid}")

    read.spec.ttl_seconds_after_finished = 600
    replaced = call("replace", api.replace_mxjob, name, namespace, read)
    expect(replaced.spec.ttl_seconds_after_finished == 600, "replace kept the old TTL")
    expect(replaced.metadata.generation == 2, f"generation {replaced.metadata.generation}")
    expect(
        replaced.metadata.resource_version != read.metadata.resource_version,
        "replace kept the resourceVersion",
    )
    step("replace", "ttlSecondsAfterFinished=600 generation=2")

    patch = MXJobPatch({"metadata": {"labels": {"client": LANGUAGE}}})
    patched = call("patch", api.patch_mxjob, name, namespace, patch)
    expect(patched.metadata.labels == {"client": LANGUAGE}, f"labels {patched.metadata.labels}")
    expect(patched.metadata.generation == 2, "a label changed the generation")
    step("patch", f"label client={LANGUAGE}")

    listed = call("list", api.list_mxjobs, namespace, label_selector=f"client={LANGUAGE}")
    names = [item.metadata.name for item in listed.items]
    expect(names == [name], f"list by label found {names}")
    others = call("list", api.list_mxjobs, namespace, label_selector="client=nobody")
    expect(others.items == [], "list by another label found jobs")
    step("list", f"client={LANGUAGE} -> {names}")

    # `replaced` carries the resourceVersion from before the patch.
    try:
        api.replace_mxjob(name, namespace, replaced)
        fail("a stale replace succeeded")
    except ApiException as e:
        status = e.data
        expect(e.status == 409, f"stale replace answered {e.status}: {e.body}")
        expect(status is not None, f"409 without a Status body: {e.body}")
        expect(status.reason == "Conflict", f"Status reason {status.reason}")
        expect(status.code == 409, f"Status code {status.code}")
        step("conflict", f"409 {status.reason}")

    deleted = call("delete", api.delete_mxjob, name, namespace)
    expect(deleted.status == "Success", f"delete answered status {deleted.status}")
    try:
        api.read_mxjob(name, namespace)
        fail("the job is still there after delete")
    except ApiException as e:
        expect(e.status == 404, f"read after delete answered {e.status}")
        expect(e.data is not None and e.data.reason == "NotFound", f"read after delete: {e.body}")
    step("delete", f"{name} (then 404 NotFound)")


if __name__ == "__main__":
    main()
