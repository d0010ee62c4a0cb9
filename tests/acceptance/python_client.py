"""Drives mxjob-server with the official Python `kubernetes` client.

Usage: python_client.py SERVER_URL SEED_JSON

Every step asserts what a Kubernetes API server would answer; the script
exits non-zero at the first surprise and prints one line per step passed.
"""

import copy
import json
import sys
import threading
import time

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL, NS = "kubeflow.org", "v1", "mxjobs", "python"


def job(seed, name, labels=None):
    body = copy.deepcopy(seed)
    body.pop("status", None)
    body["metadata"] = {"name": name, "labels": labels or {}}
    return body


def step(message):
    print(f"ok: {message}", flush=True)


def main():
    url, seed_path = sys.argv[1], sys.argv[2]
    with open(seed_path) as f:
        seed = json.load(f)
    config = client.Configuration(host=url)
    api = client.CustomObjectsApi(client.ApiClient(config))

    created = api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, job(seed, "py-a", {"suite": "py"}))
    assert created["metadata"]["generation"] == 1, created["metadata"]
    step("create")

    got = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-a")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    assert got["spec"]["jobMode"] == "MXTrain"
    step("get")

    for name in ["py-b", "py-c", "py-d"]:
        api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, job(seed, name, {"suite": "py"}))
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, job(seed, "py-other", {"suite": "other"}))
    names, token, pages = [], None, 0
    while True:
        kwargs = {"label_selector": "suite=py", "limit": 1}
        if token:
            kwargs["_continue"] = token
        page = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, **kwargs)
        pages += 1
        names += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        assert pages < 10, "pagination terminates"
    assert names == ["py-a", "py-b", "py-c", "py-d"], names
    assert pages == 4, pages
    step("list with a label selector, one item per page")

    current = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-a")
    changed = copy.deepcopy(current)
    changed["spec"]["ttlSecondsAfterFinished"] = 5000
    replaced = api.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-a", changed)
    assert replaced["spec"]["ttlSecondsAfterFinished"] == 5000
    assert replaced["metadata"]["generation"] == 2
    step("replace")

    try:
        api.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-a", changed)
        raise AssertionError("a stale replace succeeded")
    except ApiException as e:
        assert e.status == 409, e.status
        assert json.loads(e.body)["reason"] == "Conflict"
    step("stale replace is 409")

    patched = api.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "py-a", {"metadata": {"labels": {"patched": "yes"}}}
    )
    assert patched["metadata"]["labels"]["patched"] == "yes"
    assert patched["metadata"]["generation"] == 2
    step("merge patch")

    events, ready = [], threading.Event()

    def follow():
        w = watch.Watch()
        stream = w.stream(
            api.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
            label_selector="suite=watched", timeout_seconds=20,
        )
        ready.set()
        for event in stream:
            events.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "DELETED":
                w.stop()

    watcher = threading.Thread(target=follow)
    watcher.start()
    ready.wait(5)
    time.sleep(1)
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, job(seed, "py-w", {"suite": "watched"}))
    api.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-w", {"metadata": {"annotations": {"x": "1"}}})
    api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-w")
    watcher.join(25)
    assert not watcher.is_alive(), "the watch ended"
    assert events == [("ADDED", "py-w"), ("MODIFIED", "py-w"), ("DELETED", "py-w")], events
    step("watch saw ADDED, MODIFIED, DELETED")

    status = api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-a")
    assert status["status"] == "Success", status
    try:
        api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-a")
        raise AssertionError("a deleted object was found")
    except ApiException as e:
        assert e.status == 404, e.status
    step("delete")


if __name__ == "__main__":
    main()
