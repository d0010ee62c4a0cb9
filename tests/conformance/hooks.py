"""Schemathesis hooks of `cargo xtask conformance`.

The stateful phase starts each sequence with a generated call and follows
the document's links from its answer. A sequence that should reach read,
replace, patch and delete must therefore start with a create that succeeds,
and a random MXJob almost never does: beyond what the document states, the
server admits only a body whose name and namespace are DNS-1123 labels, whose
namespace matches the URL, with the replica roles of its job mode and a
container named `mxnet` (see RULES below). So in the stateful phase
(and only there), a create that schemathesis means to be valid is sent as
the document's own create example under a fresh name, in a namespace named
`conformance`.

The stateful checks also read a `dryRun=All` write as a real one: after a
dry-run delete `use_after_free` expects 404, after a dry-run create
`ensure_resource_availability` expects the object. A dry run stores nothing,
by design, so in the stateful phase creates and deletes go without `dryRun`
(the other phases send it as generated).

Every other phase, and every invalid case, is sent exactly as generated.

The narrowings of schemathesis.toml admit 400, 410 and 422 for schema-valid
requests; what they let pass is held to `RULES` below: every schema-valid
(positive) case the server answered with one of those statuses must be
explained by one of the rules, each a rule of the API that no schema of the
document can state, with its reason. The counts per rule, and every case no
rule explains, are written as JSON to the file `MXJOB_CONFORMANCE_SUPPRESSED`
names when the run ends; `cargo xtask conformance` prints them, the cases
no rule explains listed one by one.
"""

import atexit
import collections
import itertools
import json
import os
import pathlib
import re
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


class Refusal:
    """Which refusals a rule explains: a status and what the `Status` body
    says (a message, or the kind of the invalid object and its causes)."""

    def __init__(self, *statuses, message=None, kind=None, causes=None, cause_message=".*"):
        self.statuses = set(statuses)
        self.message = re.compile(message) if message else None
        self.kind = kind
        # Each cause is read as "<reason> <field>: <message>".
        self.causes = re.compile(f"(?:{causes}): {cause_message}", re.S) if causes else None

    def matches(self, status, body, cause=None):
        """Whether this is the refusal; with `cause`, whether it explains
        that one of the body's causes."""
        if status not in self.statuses:
            return False
        if self.message and not self.message.match(body.get("message") or ""):
            return False
        details = body.get("details") or {}
        if self.kind and details.get("kind") != self.kind:
            return False
        if self.causes:
            causes = [cause] if cause is not None else details.get("causes") or []
            return bool(causes) and all(
                self.causes.fullmatch(f"{c.get('reason')} {c.get('field')}: {c.get('message') or ''}")
                for c in causes
            )
        return cause is None


class Rule:
    """A rule of the API that no schema of the document can state: its
    name, why no schema states it, and the refusals it explains."""

    def __init__(self, name, reason, *refusals):
        self.name = name
        self.reason = reason
        self.refusals = refusals

    def explains(self, status, body, cause=None):
        return any(r.matches(status, body, cause) for r in self.refusals)


def explaining(status, body):
    """The rules that explain a refusal: one that explains it whole, or,
    for an invalid object, one for each of its causes. None when no rules
    do."""
    whole = next((r for r in RULES if r.explains(status, body)), None)
    if whole is not None:
        return [whole]
    causes = (body.get("details") or {}).get("causes") or []
    rules = [next((r for r in RULES if r.explains(status, body, c)), None) for c in causes]
    if not rules or None in rules:
        return None
    return list(dict.fromkeys(rules))


RULES = [
    Rule("apply-needs-field-manager",
         "an apply (media type application/apply-patch+yaml) needs the fieldManager query parameter",
         Refusal(422, kind="PatchOptions", causes=r"FieldValueRequired fieldManager")),
    Rule("force-only-on-apply",
         "the force query parameter is for applies only, which the media type tells",
         Refusal(422, kind="PatchOptions", causes=r"FieldValueForbidden force")),
    Rule("field-manager-bytes",
         "fieldManager is at most 128 bytes, as Kubernetes counts it; a schema's maxLength counts characters",
         Refusal(422, causes=r"FieldValueTooLong fieldManager")),
    Rule("patch-operation-fields",
         "a JSON patch operation has the fields its op needs (value, from): stated per op, it would split "
         "the operation type of generated clients into variants",
         Refusal(400, message=r"the body is not a valid JSON patch: missing field ")),
    Rule("patch-fits-the-object",
         "a JSON patch's paths lead into the stored object, which only the server holds",
         Refusal(422, message=r"the JSON patch could not be applied: ")),
    Rule("apply-configuration",
         "an apply's configuration (that media type only) has no managedFields, no repeated items in "
         "lists keyed by a field or kept as sets, and only numbers JSON holds",
         Refusal(400, message=r"metadata\.managedFields must be nil|the applied configuration is not valid YAML"
                 r"|failed to create typed patch object ")),
    Rule("body-namespace-is-url-namespace",
         "a body's metadata.namespace, when set, is the namespace in the URL",
         Refusal(400, message=r"the namespace of the provided object does not match the namespace sent on the request")),
    Rule("body-name-is-url-name",
         "a replaced or patched body's metadata.name is the name in the URL",
         Refusal(400, message=r"the name of the object \(.*\) does not match the name on the URL")),
    Rule("strict-field-validation",
         "fieldValidation=Strict (a query parameter) refuses fields the schema admits for Warn and Ignore",
         Refusal(400, message=r"strict decoding error: ")),
    Rule("delete-options-body-and-query",
         "DeleteOptions given both in the body and in the query agree",
         Refusal(400, message=r"the body's DeleteOptions and the query disagree on ")),
    Rule("orphan-or-propagation",
         "orphanDependents and propagationPolicy are not both given (two fields, of the body or the query)",
         Refusal(422, kind="DeleteOptions", causes=r"FieldValueInvalid propagationPolicy")),
    Rule("list-options-together",
         "resourceVersionMatch needs a resourceVersion (not 0 for Exact) and no continue; "
         "sendInitialEvents is for watches with resourceVersionMatch=NotOlderThan",
         Refusal(422, kind="ListOptions",
                 causes=r"(FieldValueForbidden|FieldValueNotSupported) (resourceVersionMatch|sendInitialEvents)"),
         Refusal(400, message=r"specifying resourceVersion is not allowed when using continue"
                 r"|resourceVersionMatch is forbidden unless resourceVersion is provided"
                 r"|resourceVersionMatch=Exact needs a resourceVersion other than 0")),
    Rule("selector-key-prefix-length",
         "a label selector key's prefix is at most 253 characters (the document states the rest of the "
         "selector grammars as patterns; a pattern without lookahead cannot bound a repeated group's length)",
         Refusal(400, message=r"unable to parse labelSelector: invalid label key .*: "
                 r"the prefix must be at most 253 characters long")),
    Rule("issued-continue-token",
         "a continue token is one the server issued, within the history it keeps",
         Refusal(400, message=r"continue key is not valid"),
         Refusal(410, message=r"the continue token is too old")),
    Rule("kept-resource-version",
         "a resourceVersion names a revision of this server: decimal, and within the history it keeps",
         Refusal(400, message=r"invalid resourceVersion "),
         Refusal(410, message=r"too old resource version|the requested resourceVersion is too old")),
    Rule("job-metadata",
         "the job's own metadata: name or generateName, names as DNS-1123 labels, label keys and values, "
         "annotation keys and size, no finalizers; Kubernetes' ObjectMeta, shared with the pod template the "
         "server does not judge, and its maps' keys (OpenAPI 3.0 has no propertyNames)",
         Refusal(422, kind="MXJob",
                 causes=r"FieldValue(Required|Invalid|TooLong|Forbidden) "
                 r"metadata\.(name|namespace|generateName|labels|annotations|finalizers)")),
    Rule("replica-status-roles",
         "status.mxReplicaStatuses is keyed by replica role (a map's keys)",
         Refusal(422, kind="MXJob", causes=r"FieldValueNotSupported status\.mxReplicaStatuses")),
    Rule("mxjob-admission-across-fields",
         "a job has the replica roles of its job mode, each with a container named mxnet and container "
         "names unique in its pod (one replica for Scheduler, TunerTracker and Tuner, whose spec all roles share)",
         Refusal(422, kind="MXJob",
                 causes=r"FieldValue(Required|Forbidden|Invalid|NotSupported) "
                 r"spec\.mxReplicaSpecs(\.\w+(\.replicas|\.template\.spec\.containers)?)?"),
         Refusal(422, kind="MXJob",
                 causes=r"FieldValueDuplicate spec\.mxReplicaSpecs\.\w+\.template\.spec\."
                 r"(containers|initContainers)\[\d+\]\.name")),
    Rule("update-needs-resource-version",
         "a replace (of the object or its status) names the resourceVersion it read: a custom resource "
         "allows no unconditional update, as in Kubernetes; the body's schema is the create's, where "
         "metadata.resourceVersion must stay optional",
         Refusal(422, kind="MXJob", causes=r"FieldValueInvalid metadata\.resourceVersion",
                 cause_message=r"Invalid value: 0: must be specified for an update")),
    Rule("mutable-fields-only",
         "a replace or patch changes only the fields that may change, against the stored object",
         Refusal(422, kind="MXJob", causes=r"FieldValueInvalid \S+", cause_message=r".*field is immutable")),
]

_lock = threading.Lock()
_explained = collections.Counter()
_unexplained = []


@schemathesis.hook
def after_call(context, case, response):
    meta = case.meta
    operation = context.operation
    if meta is None or operation is None or meta.generation.mode != GenerationMode.POSITIVE:
        return
    status = response.status_code
    if status not in _ALLOWED_ONLY_BY_CONFIG:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    rules = explaining(status, body)
    operation_id = operation.definition.raw.get("operationId")
    with _lock:
        if rules is not None:
            for rule in rules:
                _explained[rule.name] += 1
        elif len(_unexplained) < 50:
            _unexplained.append(
                {
                    "operation": operation_id,
                    "status": status,
                    "message": (body.get("message") or response.text or "")[:500],
                }
            )
        else:
            _unexplained.append(None)


def _write_suppressed():
    path = os.environ.get("MXJOB_CONFORMANCE_SUPPRESSED")
    if not path:
        return
    with _lock:
        report = {
            "rules": [
                {"name": r.name, "reason": r.reason, "requests": _explained[r.name]} for r in RULES
            ],
            "unexplained": len(_unexplained),
            "examples": [u for u in _unexplained if u is not None],
        }
    pathlib.Path(path).write_text(json.dumps(report, indent=1))


atexit.register(_write_suppressed)
