// Command main drives mxjob-server through the Go client that openapi-generator
// generates from openapi/mxjob.json.
//
// Usage: main SERVER_URL SEED_JSON
//
// `cargo xtask clients` generates the client into target/clients/go (module
// mxjob.test/client, which go.mod replaces with that directory), vets and
// builds this program into target/clients/bin/mxjob-go-client, and
// tests/tests/clients.rs runs it. It prints one `ok: STEP ...` line per step
// and exits non-zero at the first answer it did not expect.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"

	mxjob "mxjob.test/client"
)

const language = "go"

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAILED: "+format+"\n", args...)
	os.Exit(1)
}

func expect(condition bool, format string, args ...interface{}) {
	if !condition {
		fail(format, args...)
	}
}

func step(name, format string, args ...interface{}) {
	fmt.Printf("ok: %s %s\n", name, fmt.Sprintf(format, args...))
}

// must stops the program when a call that should have succeeded did not.
func must(what string, err error) {
	if err != nil {
		var apiErr *mxjob.GenericOpenAPIError
		if errors.As(err, &apiErr) {
			fail("%s: %v: %s", what, err, apiErr.Body())
		}
		fail("%s: %v", what, err)
	}
}

// statusOf is the v1 Status a failed call answered with.
func statusOf(err error) (mxjob.Status, bool) {
	var apiErr *mxjob.GenericOpenAPIError
	if !errors.As(err, &apiErr) {
		return mxjob.Status{}, false
	}
	status, ok := apiErr.Model().(mxjob.Status)
	return status, ok
}

// newJob is the seed without its status and the metadata the server owns.
func newJob(seedPath string) mxjob.MXJob {
	data, err := os.ReadFile(seedPath)
	must("reading the seed", err)
	var job mxjob.MXJob
	must("decoding the seed", json.Unmarshal(data, &job))
	job.Status = nil
	job.Metadata = mxjob.IoK8sApimachineryPkgApisMetaV1ObjectMeta{
		Name:      job.Metadata.Name,
		Namespace: job.Metadata.Namespace,
	}
	return job
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: main SERVER_URL SEED_JSON")
	}
	url, seedPath := os.Args[1], os.Args[2]
	job := newJob(seedPath)
	name, namespace := job.Metadata.GetName(), job.Metadata.GetNamespace()

	config := mxjob.NewConfiguration()
	config.Servers = mxjob.ServerConfigurations{{URL: url}}
	api := mxjob.NewAPIClient(config).MxjobsAPI
	ctx := context.Background()

	created, response, err := api.CreateMxjob(ctx, namespace).MXJob(job).Execute()
	must("create", err)
	expect(response.StatusCode == 201, "create answered %d", response.StatusCode)
	expect(created.Metadata.GetName() == name, "created %q", created.Metadata.GetName())
	expect(created.Metadata.GetGeneration() == 1, "generation %d", created.Metadata.GetGeneration())
	step("create", "%s resourceVersion=%s", name, created.Metadata.GetResourceVersion())

	read, _, err := api.ReadMxjob(ctx, name, namespace).Execute()
	must("read", err)
	expect(read.Metadata.GetUid() == created.Metadata.GetUid(), "read returned another uid")
	expect(read.Spec.GetTtlSecondsAfterFinished() == job.Spec.GetTtlSecondsAfterFinished(),
		"read ttlSecondsAfterFinished=%d", read.Spec.GetTtlSecondsAfterFinished())
	step("read", "%s uid=%s", name, read.Metadata.GetUid())

	changed := *read
	changed.Spec.SetTtlSecondsAfterFinished(600)
	replaced, _, err := api.ReplaceMxjob(ctx, name, namespace).MXJob(changed).Execute()
	must("replace", err)
	expect(replaced.Spec.GetTtlSecondsAfterFinished() == 600, "replace kept the old TTL")
	expect(replaced.Metadata.GetGeneration() == 2, "generation %d", replaced.Metadata.GetGeneration())
	expect(replaced.Metadata.GetResourceVersion() != read.Metadata.GetResourceVersion(),
		"replace kept the resourceVersion")
	step("replace", "ttlSecondsAfterFinished=600 generation=2")

	merge := map[string]interface{}{
		"metadata": map[string]interface{}{"labels": map[string]string{"client": language}},
	}
	patch := mxjob.MXJobPatch{MapmapOfStringAny: &merge}
	patched, _, err := api.PatchMxjob(ctx, name, namespace).MXJobPatch(patch).Execute()
	must("patch", err)
	expect(reflect.DeepEqual(patched.Metadata.GetLabels(), map[string]string{"client": language}),
		"labels %v", patched.Metadata.GetLabels())
	expect(patched.Metadata.GetGeneration() == 2, "a label changed the generation")
	step("patch", "label client=%s", language)

	list := func(selector string) []string {
		listed, _, err := api.ListMxjobs(ctx, namespace).LabelSelector(selector).Execute()
		must("list", err)
		names := []string{}
		for _, item := range listed.Items {
			names = append(names, item.Metadata.GetName())
		}
		return names
	}
	names := list("client=" + language)
	expect(reflect.DeepEqual(names, []string{name}), "list by label found %v", names)
	others := list("client=nobody")
	expect(len(others) == 0, "list by another label found %v", others)
	step("list", "client=%s -> %v", language, names)

	// replaced carries the resourceVersion from before the patch.
	_, response, err = api.ReplaceMxjob(ctx, name, namespace).MXJob(*replaced).Execute()
	expect(err != nil, "a stale replace succeeded")
	expect(response != nil && response.StatusCode == 409, "stale replace answered %v", err)
	conflict, ok := statusOf(err)
	expect(ok, "409 without a Status body: %v", err)
	expect(conflict.GetReason() == "Conflict", "Status reason %q", conflict.GetReason())
	expect(conflict.GetCode() == 409, "Status code %d", conflict.GetCode())
	step("conflict", "409 %s", conflict.GetReason())

	deleted, _, err := api.DeleteMxjob(ctx, name, namespace).Execute()
	must("delete", err)
	expect(deleted.GetStatus() == "Success", "delete answered status %q", deleted.GetStatus())
	_, response, err = api.ReadMxjob(ctx, name, namespace).Execute()
	expect(err != nil && response != nil && response.StatusCode == 404, "read after delete answered %v", err)
	gone, ok := statusOf(err)
	expect(ok && gone.GetReason() == "NotFound", "read after delete: %v", err)
	step("delete", "%s (then 404 NotFound)", name)
}
