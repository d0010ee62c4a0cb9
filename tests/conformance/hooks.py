"""Schemathesis hooks of `cargo xtask conformance`.

The stateful phase starts each sequence with a generated call and follows
the document's links from its answer. A sequence that should reach read,
replace, patch and delete must therefore start with a create that succeeds,
and a random MXJob almost never does: the server admits only DNS-1123
names, a replica role per job mode, a container named `mxnet` with an image,
and so on, none of which a JSON schema can state. So in the stateful phase
(and only there), a create that schemathesis means to be valid is sent as
the document's own create example under a fresh name, in a namespace named
`conformance`.

The stateful checks also read a `dryRun=All` write as a real one: after a
dry-run delete `use_after_free` expects 404, after a dry-run create
`ensure_resource_availability` expects the object. A dry run stores nothing,
by design, so in the stateful phase creates and deletes go without `dryRun`
(the other phases send it as generated).

Every other phase, and every invalid case, is sent exactly as generated.

What the narrowings of schemathesis.toml let pass is counted: every
schema-valid (positive) case the server answered with a status that only an
allowance there admits (400, 410, 422), per operation and status, written
as JSON to the file `MXJOB_CONFORMANCE_SUPPRESSED` names when the run ends;
`cargo xtask conformance` prints it.
"""

import atexit
import collections
import itertools
import json
import os
import pathlib
import threading

import schemathesis
from schemathesis.generation.meta import TestPhase
from schemathesis.generation.modes import GenerationMode

SPEC = pathlib.Path("openapi/mxjob.json")
NAMESPACE = "conformance"

_EXAMPLE = json.loads(SPEC.read_text())["components"]["examples"]["NewMXJob"]["value"]
_NAMES = (f"stateful-{n}" for n in itertools.count(1))


def _stateful_positive(context, case):
    """The operationId of a valid stateful case, or None."""
    operation = context.operation
    meta = case.meta
    if operation is None or meta is None:
        return None
    if meta.phase.name != TestPhase.STATEFUL or meta.generation.mode != GenerationMode.POSITIVE:
        return None
    return operation.definition.raw.get("operationId")


@schemathesis.hook
def before_call(context, case, **kwargs):
    operation_id = _stateful_positive(context, case)
    if operation_id in ("create_mxjob", "delete_mxjob", "delete_mxjob_collection"):
        case.query = {k: v for k, v in (case.query or {}).items() if k != "dryRun"}
    if operation_id == "create_mxjob":
        job = json.loads(json.dumps(_EXAMPLE))
        job["metadata"] = {"name": next(_NAMES)}
        case.body = job
        case.path_parameters = {**(case.path_parameters or {}), "namespace": NAMESPACE}


# Statuses that `positive_data_acceptance` fails without the allowances.
_ALLOWED_ONLY_BY_CONFIG = {400, 410, 422}
_suppressed = collections.Counter()
_suppressed_lock = threading.Lock()


@schemathesis.hook
def after_call(context, case, response):
    meta = case.meta
    operation = context.operation
    if meta is None or operation is None or meta.generation.mode != GenerationMode.POSITIVE:
        return
    if response.status_code in _ALLOWED_ONLY_BY_CONFIG:
        key = f"{operation.definition.raw.get('operationId')} {response.status_code}"
        with _suppressed_lock:
            _suppressed[key] += 1


def _write_suppressed():
    path = os.environ.get("MXJOB_CONFORMANCE_SUPPRESSED")
    if path:
        with _suppressed_lock:
            pathlib.Path(path).write_text(json.dumps(dict(sorted(_suppressed.items()))))


atexit.register(_write_suppressed)
