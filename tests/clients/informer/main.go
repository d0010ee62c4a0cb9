// Command informer runs a client-go informer on the MXJobs of one namespace
// of mxjob-server, through the dynamic client, and reports how it filled its
// cache and what it saw.
//
// Usage: informer SERVER_URL NAMESPACE SEED_JSON [EXPECTED_NAME...]
//
// The informer starts with client-go's WatchListClient feature as the
// environment sets it (KUBE_FEATURE_WatchListClient=true turns it on; the
// test sets it so that a change of client-go's default cannot change what is
// tested). With it, the reflector fills its cache from a streaming list
// (a watch with sendInitialEvents=true) instead of a LIST; when the server
// does not end the initial events the way kube-apiserver does, the cache
// does not sync while that watch stays open, and client-go falls back to a
// LIST once it ends, which the request log then shows.
//
// Every request goes through a RoundTripper (rest.Config.WrapTransport) that
// records its method and URL. Once the cache has synced, the program checks
// that it holds exactly EXPECTED_NAME..., then creates a job made from the
// seed (the MXJob at SEED_JSON, renamed), updates its labels and deletes it,
// through the dynamic client, waiting a bounded time for the informer's
// Add, Update and Delete handlers to see each.
//
// It prints one JSON summary on stdout (see summary) and exits non-zero,
// with the reason on stderr, when a step fails. Whether the informer took
// the streaming path is reported, not judged: tests/tests/clients.rs
// asserts it.
//
// `cargo xtask clients` builds it into target/clients/bin/mxjob-informer.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// How long each wait (the cache sync, each event) may take.
const wait = 30 * time.Second

// The name of the job the program creates, updates and deletes.
const newName = "informer-made"

var mxjobs = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: "mxjobs"}

// summary is what the program prints.
type summary struct {
	// WatchListClient is whether client-go's feature was on.
	WatchListClient bool `json:"watchListClient"`
	// Synced is the names in the cache when it reported synced, sorted.
	Synced []string `json:"synced"`
	// Events is what the handlers saw, in order: "add NAME", "update NAME",
	// "delete NAME" (the adds of the initial objects included).
	Events []string `json:"events"`
	// SendInitialEvents is whether a request carried sendInitialEvents=true.
	SendInitialEvents bool `json:"sendInitialEvents"`
	// PlainList is whether a GET of the collection without watch=true, a
	// LIST, was made.
	PlainList bool `json:"plainList"`
	// Requests is every request made, as "METHOD URL", in order.
	Requests []string `json:"requests"`
	// Error is why the program failed, if it did.
	Error string `json:"error,omitempty"`
}

// recorder keeps every request's method and URL.
type recorder struct {
	mu       sync.Mutex
	requests []*http.Request
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (r *recorder) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(request *http.Request) (*http.Response, error) {
		r.mu.Lock()
		r.requests = append(r.requests, request)
		r.mu.Unlock()
		return next.RoundTrip(request)
	})
}

// report describes the recorded requests in s.
func (r *recorder) report(s *summary, collection string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.Requests = []string{}
	for _, request := range r.requests {
		s.Requests = append(s.Requests, request.Method+" "+request.URL.String())
		query := request.URL.Query()
		if query.Get("sendInitialEvents") == "true" {
			s.SendInitialEvents = true
		}
		watching := query.Get("watch") == "true" || query.Get("watch") == "1"
		if request.Method == http.MethodGet && request.URL.Path == collection && !watching {
			s.PlainList = true
		}
	}
}

// handlers records what the informer's handlers see and lets the program
// wait for a given event.
type handlers struct {
	mu     sync.Mutex
	events []string
	seen   chan struct{}
}

func (h *handlers) record(event string) {
	h.mu.Lock()
	h.events = append(h.events, event)
	h.mu.Unlock()
	// Wake a waiter, if any; it checks the whole list again.
	select {
	case h.seen <- struct{}{}:
	default:
	}
}

func (h *handlers) snapshot() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{}, h.events...)
}

func (h *handlers) has(event string) bool {
	for _, e := range h.snapshot() {
		if e == event {
			return true
		}
	}
	return false
}

// waitFor waits at most `wait` for event to be seen.
func (h *handlers) waitFor(event string) error {
	deadline := time.After(wait)
	for !h.has(event) {
		select {
		case <-h.seen:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return fmt.Errorf("the informer did not see %q within %s (saw %v)", event, wait, h.snapshot())
		}
	}
	return nil
}

func nameOf(obj interface{}) string {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u.GetName()
	}
	return fmt.Sprintf("<%T>", obj)
}

// newJob is the seed renamed into namespace, without what the server sets.
func newJob(seedPath, namespace string) (*unstructured.Unstructured, error) {
	data, err := os.ReadFile(seedPath)
	if err != nil {
		return nil, fmt.Errorf("reading the seed: %w", err)
	}
	var object map[string]interface{}
	if err := json.Unmarshal(data, &object); err != nil {
		return nil, fmt.Errorf("decoding the seed: %w", err)
	}
	delete(object, "status")
	object["metadata"] = map[string]interface{}{"name": newName, "namespace": namespace}
	return &unstructured.Unstructured{Object: object}, nil
}

func run(s *summary, rec *recorder, url, namespace, seedPath string, expected []string) error {
	s.WatchListClient = clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient)
	job, err := newJob(seedPath, namespace)
	if err != nil {
		return err
	}
	config := &rest.Config{Host: url, WrapTransport: rec.wrap}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("making the dynamic client: %w", err)
	}

	h := &handlers{seen: make(chan struct{}, 1)}
	defer func() { s.Events = h.snapshot() }()
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 0, namespace, nil)
	informer := factory.ForResource(mxjobs).Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { h.record("add " + nameOf(obj)) },
		UpdateFunc: func(_, obj interface{}) { h.record("update " + nameOf(obj)) },
		DeleteFunc: func(obj interface{}) { h.record("delete " + nameOf(obj)) },
	}); err != nil {
		return fmt.Errorf("adding the handlers: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Deferred calls run last first: the informers are told to stop, then
	// waited for.
	defer factory.Shutdown()
	defer cancel()
	factory.Start(ctx.Done())

	syncCtx, syncCancel := context.WithTimeout(ctx, wait)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), informer.HasSynced) {
		return fmt.Errorf("the informer's cache did not sync within %s", wait)
	}
	s.Synced = []string{}
	for _, object := range informer.GetStore().List() {
		s.Synced = append(s.Synced, nameOf(object))
	}
	sort.Strings(s.Synced)
	sort.Strings(expected)
	if strings.Join(s.Synced, ",") != strings.Join(expected, ",") {
		return fmt.Errorf("the synced cache holds %v, not the jobs that existed: %v", s.Synced, expected)
	}

	jobs := client.Resource(mxjobs).Namespace(namespace)
	created, err := jobs.Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating %s: %w", newName, err)
	}
	if err := h.waitFor("add " + newName); err != nil {
		return err
	}
	labels := created.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels["informer"] = "updated"
	created.SetLabels(labels)
	if _, err := jobs.Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating %s: %w", newName, err)
	}
	if err := h.waitFor("update " + newName); err != nil {
		return err
	}
	if err := jobs.Delete(ctx, newName, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("deleting %s: %w", newName, err)
	}
	return h.waitFor("delete " + newName)
}

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: informer SERVER_URL NAMESPACE SEED_JSON [EXPECTED_NAME...]")
		os.Exit(2)
	}
	url, namespace, seedPath := os.Args[1], os.Args[2], os.Args[3]
	expected := append([]string{}, os.Args[4:]...)
	rec := &recorder{}
	s := &summary{Synced: []string{}, Events: []string{}}
	err := run(s, rec, url, namespace, seedPath, expected)
	rec.report(s, "/apis/kubeflow.org/v1/namespaces/"+namespace+"/mxjobs")
	if err != nil {
		s.Error = err.Error()
	}
	out, marshalErr := json.Marshal(s)
	if marshalErr != nil {
		fmt.Fprintf(os.Stderr, "FAILED: encoding the summary: %v\n", marshalErr)
		os.Exit(1)
	}
	fmt.Println(string(out))
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAILED: %v\n", err)
		os.Exit(1)
	}
}
