//! Who may do what: token authentication, namespace policies, limits, TLS,
//! the audit log, and no lost update under contention.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use mxjob_client::types;
use mxjob_server::auth::{Auth, Policy, TokenFile};
use mxjob_server::server::Settings;
use mxjob_server::store::memory::MemoryStore;
use mxjob_tests::{discard, new_job, new_job_value, resource_version, status_of, TestServer};
use serde_json::{json, Value};

const TOKENS: &str = "alice-token,alice,1001,\"team-a\"\nbob-token,bob,1002,\"team-b,readers\"\n";
const POLICY: &str = r#"{"rules": [
    {"groups": ["team-a"], "namespaces": ["a"], "verbs": ["*"]},
    {"groups": ["team-b"], "namespaces": ["b"], "verbs": ["*"]},
    {"groups": ["readers"], "namespaces": ["a"], "verbs": ["get", "list", "watch"]}
]}"#;

fn secured(max_watches: Option<usize>) -> Settings {
    let mut settings = Settings::new("127.0.0.1:0".parse().expect("address"));
    settings.auth = Auth::new(
        Some(TokenFile::parse(TOKENS).expect("tokens")),
        Some(Policy::parse(POLICY).expect("policy")),
        max_watches,
    );
    settings
}

async fn start_secured(log: slog::Logger) -> TestServer {
    TestServer::start_configured(Arc::new(MemoryStore::new()), secured(Some(2)), log).await
}

fn client_for(server: &TestServer, token: &str) -> mxjob_client::Client {
    let http = mxjob_client::http_client_with_bearer_token(token).expect("client");
    mxjob_client::Client::new_with_client(&server.url, http)
}

async fn raw(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = server.http.get(format!("{}{path}", server.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let code = response.status().as_u16();
    (code, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401_statuses() {
    let server = start_secured(discard()).await;
    let path = "/apis/kubeflow.org/v1/namespaces/a/mxjobs";
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("x-auth-token", "alice-token-x")],
    ] {
        let (code, body) = raw(&server, path, &headers).await;
        assert_eq!(code, 401, "{headers:?}");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "Unauthorized");
        assert_eq!(body["code"], 401);
    }
    let (code, _) = raw(&server, path, &[("authorization", "Bearer alice-token")]).await;
    assert_eq!(code, 200, "Bearer works");
    let (code, _) = raw(&server, path, &[("x-auth-token", "alice-token")]).await;
    assert_eq!(code, 200, "X-Auth-Token works");
    server.stop().await;
}

#[tokio::test]
async fn discovery_and_documents_need_no_credentials() {
    let server = start_secured(discard()).await;
    for path in [
        "/api",
        "/apis",
        "/apis/kubeflow.org",
        "/apis/kubeflow.org/v1",
        "/version",
        "/openapi.json",
    ] {
        let code = server
            .http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .expect("get")
            .status();
        assert_eq!(code.as_u16(), 200, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn users_stay_in_their_namespaces_and_learn_nothing_outside() {
    let server = start_secured(discard()).await;
    let alice = client_for(&server, "alice-token");
    let bob = client_for(&server, "bob-token");
    alice
        .create_mxjob()
        .namespace("a")
        .body(new_job("a", "secret"))
        .send()
        .await
        .expect("alice creates in a");
    bob.create_mxjob()
        .namespace("b")
        .body(new_job("b", "bobs"))
        .send()
        .await
        .expect("bob creates in b");

    // Alice may not read b: whether the object exists or not, the answer is the same.
    let (code, existing) = status_of(alice.read_mxjob().namespace("b").name("bobs").send().await);
    let (code2, missing) = status_of(
        alice
            .read_mxjob()
            .namespace("b")
            .name("nothing")
            .send()
            .await,
    );
    assert_eq!((code, code2), (403, 403));
    assert_eq!(existing.reason.as_deref(), Some("Forbidden"));
    assert_eq!(
        existing.message.as_deref(),
        Some(
            "mxjobs.kubeflow.org \"bobs\" is forbidden: User \"alice\" cannot get resource \"mxjobs\" \
             in API group \"kubeflow.org\" in the namespace \"b\""
        )
    );
    assert_eq!(
        missing
            .message
            .as_deref()
            .map(|m| m.replace("\"nothing\"", "\"bobs\"")),
        existing.message,
        "a denied user cannot tell existing from missing objects"
    );
    let (code, listing) = status_of(alice.list_mxjobs().namespace("b").send().await);
    assert_eq!(code, 403);
    assert!(listing
        .message
        .unwrap_or_default()
        .starts_with("mxjobs.kubeflow.org is forbidden: User \"alice\" cannot list"));

    // Bob reads a (readers) but may not write there.
    let read = bob
        .read_mxjob()
        .namespace("a")
        .name("secret")
        .send()
        .await
        .expect("bob reads a");
    let (code, _) = status_of(
        bob.delete_mxjob()
            .namespace("a")
            .name("secret")
            .send()
            .await,
    );
    assert_eq!(code, 403);
    let (code, _) = status_of(
        bob.replace_mxjob()
            .namespace("a")
            .name("secret")
            .body(read.into_inner())
            .send()
            .await,
    );
    assert_eq!(code, 403);
    let still = alice
        .read_mxjob()
        .namespace("a")
        .name("secret")
        .send()
        .await
        .expect("still there");
    assert_eq!(still.metadata.generation, Some(1));
    server.stop().await;
}

#[tokio::test]
async fn watches_beyond_the_per_user_limit_are_429() {
    let server = start_secured(discard()).await;
    let alice = client_for(&server, "alice-token");
    let first = alice
        .watch_mxjobs()
        .namespace("a")
        .timeout_seconds(30)
        .send()
        .await
        .expect("first watch");
    let second = alice
        .watch_mxjobs()
        .namespace("a")
        .timeout_seconds(30)
        .send()
        .await
        .expect("second watch");
    let (code, status) = status_of(
        alice
            .watch_mxjobs()
            .namespace("a")
            .timeout_seconds(30)
            .send()
            .await,
    );
    assert_eq!(
        (code, status.reason.as_deref()),
        (429, Some("TooManyRequests"))
    );
    // Another user has watches of their own.
    let bob = client_for(&server, "bob-token");
    let bobs = bob
        .watch_mxjobs()
        .namespace("b")
        .timeout_seconds(30)
        .send()
        .await
        .expect("bob's watch");
    drop((second, bobs));
    // A closed watch gives its slot back (the server notices the hang-up).
    let mut again = None;
    for _ in 0..50 {
        if let Ok(watch) = alice
            .watch_mxjobs()
            .namespace("a")
            .timeout_seconds(30)
            .send()
            .await
        {
            again = Some(watch);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the slot came back");
    drop((first, again));
    server.stop().await;
}

/// Collects log records as `key=value` maps.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl slog::Serializer for Fields<'_> {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments<'_>) -> slog::Result {
        self.0.insert(key.to_string(), value.to_string());
        Ok(())
    }
}

impl slog::Drain for Collect {
    type Ok = ();
    type Err = slog::Never;
    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        let mut fields = BTreeMap::new();
        fields.insert("msg".to_string(), record.msg().to_string());
        let _ = slog::KV::serialize(&record.kv(), record, &mut Fields(&mut fields));
        let _ = slog::KV::serialize(values, record, &mut Fields(&mut fields));
        self.0.lock().expect("lock").push(fields);
        Ok(())
    }
}

#[tokio::test]
async fn every_mutating_request_leaves_one_audit_line() {
    let collect = Collect::default();
    let log = slog::Logger::root(slog::Fuse(collect.clone()), slog::o!());
    let server = start_secured(log).await;
    let alice = client_for(&server, "alice-token");
    let bob = client_for(&server, "bob-token");
    let created = alice
        .create_mxjob()
        .namespace("a")
        .body(new_job("a", "audited"))
        .send()
        .await
        .expect("create");
    alice
        .read_mxjob()
        .namespace("a")
        .name("audited")
        .send()
        .await
        .expect("reads are not audited");
    let _ = bob
        .delete_mxjob()
        .namespace("a")
        .name("audited")
        .send()
        .await;
    alice
        .delete_mxjob()
        .namespace("a")
        .name("audited")
        .send()
        .await
        .expect("delete");

    let lines: Vec<BTreeMap<String, String>> = collect
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter(|r| r["msg"] == "audit")
        .cloned()
        .collect();
    let summary: Vec<(&str, &str, &str, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["user"].as_str(),
                l["verb"].as_str(),
                l["namespace"].as_str(),
                l["name"].as_str(),
                l["code"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("alice", "create", "a", "audited", "201"),
            ("bob", "delete", "a", "audited", "403"),
            ("alice", "delete", "a", "audited", "200"),
        ]
    );
    assert_eq!(
        lines[0]["resourceVersion"],
        resource_version(&created.into_inner())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_client_talks_https() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, ca_pem) = mxjob_tests::self_signed_localhost(dir.path());
    let mut settings = Settings::new("127.0.0.1:0".parse().expect("address"));
    settings.tls = Some((cert, key));
    let server = mxjob_server::server::start_with(
        mxjob_server::registry::Registry::new(Arc::new(MemoryStore::new())),
        settings,
        &discard(),
    )
    .expect("TLS server starts");
    let port = server.local_addr().port();
    let trusted = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("pem");
    let http = reqwest::Client::builder()
        .add_root_certificate(trusted)
        .build()
        .expect("client");
    let client = mxjob_client::Client::new_with_client(&format!("https://localhost:{port}"), http);
    let created = client
        .create_mxjob()
        .namespace("tls")
        .body(new_job("tls", "secure"))
        .send()
        .await
        .expect("create over TLS");
    let read = client
        .read_mxjob()
        .namespace("tls")
        .name("secure")
        .send()
        .await
        .expect("read over TLS");
    assert_eq!(read.into_inner(), created.into_inner());
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/version")).await;
    assert!(
        plain.is_err() || !plain.expect("response").status().is_success(),
        "plain HTTP is not served"
    );
    server.close().await.expect("stops");
}

/// Eight clients each increment a counter kept in an annotation 200 times
/// by read-modify-replace, retrying on 409: no increment is lost, and every
/// acknowledged write has its own, increasing resourceVersion.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_update_is_lost_under_contention() {
    const CLIENTS: usize = 8;
    const CYCLES: usize = 200;
    let server = Arc::new(TestServer::start().await);
    let mut job = new_job_value("race", "counter");
    job["metadata"]["annotations"] = json!({"counter": "0"});
    server
        .client
        .create_mxjob()
        .namespace("race")
        .body(mxjob_tests::from_value(job))
        .send()
        .await
        .expect("create");
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut attempts = 0;
                while acknowledged.len() < CYCLES {
                    attempts += 1;
                    assert!(attempts < CYCLES * 100, "retries are bounded");
                    let mut current: types::MxJob = server
                        .client
                        .read_mxjob()
                        .namespace("race")
                        .name("counter")
                        .send()
                        .await
                        .expect("read")
                        .into_inner();
                    let count: u64 = current.metadata.annotations["counter"]
                        .parse()
                        .expect("number");
                    current
                        .metadata
                        .annotations
                        .insert("counter".into(), (count + 1).to_string());
                    match server
                        .client
                        .replace_mxjob()
                        .namespace("race")
                        .name("counter")
                        .body(current)
                        .send()
                        .await
                    {
                        Ok(replaced) => {
                            let replaced = replaced.into_inner();
                            acknowledged.push((
                                count + 1,
                                resource_version(&replaced).parse::<u64>().expect("rv"),
                            ));
                        }
                        Err(mxjob_client::Error::ErrorResponse(r))
                            if r.status().as_u16() == 409 => {}
                        Err(other) => panic!("unexpected error: {other:?}"),
                    }
                }
                acknowledged
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client finishes"));
    }
    let last = server
        .client
        .read_mxjob()
        .namespace("race")
        .name("counter")
        .send()
        .await
        .expect("read")
        .into_inner();
    assert_eq!(
        last.metadata.annotations["counter"],
        (CLIENTS * CYCLES).to_string()
    );
    let versions: HashSet<u64> = all.iter().map(|(_, rv)| *rv).collect();
    assert_eq!(
        versions.len(),
        CLIENTS * CYCLES,
        "every acknowledged write has its own resourceVersion"
    );
    all.sort();
    let counts: Vec<u64> = all.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        counts,
        (1..=(CLIENTS * CYCLES) as u64).collect::<Vec<_>>(),
        "each increment acknowledged once"
    );
    assert!(
        all.windows(2).all(|w| w[0].1 < w[1].1),
        "resourceVersions increase with the counter"
    );
    let server = Arc::into_inner(server).expect("tasks done");
    server.stop().await;
}

/// A raw request with `headers` and an optional JSON body; the code and
/// the body as JSON (`Null` when it is not).
async fn send_raw(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut request = server.http.request(method, format!("{}{path}", server.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("request");
    let code = response.status().as_u16();
    (code, response.json().await.unwrap_or(Value::Null))
}

async fn names_in(server: &TestServer, namespace: &str) -> Vec<String> {
    server
        .client
        .list_mxjobs()
        .namespace(namespace)
        .send()
        .await
        .expect("list")
        .into_inner()
        .items
        .into_iter()
        .filter_map(|job| job.metadata.name)
        .collect()
}

#[tokio::test]
async fn anonymous_servers_refuse_foreign_hosts_and_origins() {
    let server = TestServer::start().await;
    let collection = "/apis/kubeflow.org/v1/namespaces/web/mxjobs";
    let job = serde_json::to_vec(&new_job_value("web", "from-a-page")).expect("json");
    let port = server.url.rsplit(':').next().expect("port").to_string();
    let own = format!("127.0.0.1:{port}");
    let foreign_host = format!("evil.example:{port}");
    let own_origin = format!("http://{own}");
    let refusals: [Vec<(&str, &str)>; 4] = [
        // A cross-site page: the browser names the page's origin.
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        // DNS rebinding: the page's host name, re-pointed at 127.0.0.1.
        vec![("host", foreign_host.as_str())],
        vec![
            ("host", foreign_host.as_str()),
            ("origin", "http://evil.example"),
        ],
    ];
    for headers in &refusals {
        let mut with_type = headers.clone();
        with_type.push(("content-type", "application/json"));
        let (code, body) = send_raw(
            &server,
            reqwest::Method::POST,
            collection,
            &with_type,
            Some(job.clone()),
        )
        .await;
        assert_eq!(code, 403, "{headers:?}: {body:#}");
        assert_eq!(body["reason"], "Forbidden");
        let (code, _) = send_raw(&server, reqwest::Method::GET, collection, headers, None).await;
        assert_eq!(code, 403, "GET with {headers:?}");
        let (code, _) = send_raw(&server, reqwest::Method::GET, "/version", headers, None).await;
        assert_eq!(code, 403, "discovery with {headers:?}");
    }
    assert!(names_in(&server, "web").await.is_empty());

    // The server itself, by address or by localhost, is served.
    let localhost = format!("localhost:{port}");
    for headers in [
        vec![
            ("origin", own_origin.as_str()),
            ("content-type", "application/json"),
        ],
        vec![
            ("host", localhost.as_str()),
            ("content-type", "application/json"),
        ],
    ] {
        let (code, body) = send_raw(
            &server,
            reqwest::Method::POST,
            collection,
            &headers,
            Some(job.clone()),
        )
        .await;
        assert!(code == 201 || code == 409, "{headers:?}: {code} {body:#}");
    }
    assert_eq!(names_in(&server, "web").await, ["from-a-page"]);
    server.stop().await;
}

#[tokio::test]
async fn servers_with_tokens_leave_host_and_origin_to_the_token() {
    let server = start_secured(discard()).await;
    let (code, _) = send_raw(
        &server,
        reqwest::Method::GET,
        "/apis/kubeflow.org/v1/namespaces/a/mxjobs",
        &[
            ("authorization", "Bearer alice-token"),
            ("host", "mxjob.example.com"),
            ("origin", "https://dashboard.example.com"),
        ],
        None,
    )
    .await;
    assert_eq!(code, 200);
    server.stop().await;
}

/// Method, path, headers and body of a raw request.
type RawRequest<'a> = (
    reqwest::Method,
    String,
    Vec<(&'a str, &'a str)>,
    Option<Vec<u8>>,
);

#[tokio::test]
async fn refused_callers_are_refused_before_their_query_or_body_is_read() {
    let server = start_secured(discard()).await;
    let collection = "/apis/kubeflow.org/v1/namespaces/a/mxjobs";
    let object = format!("{collection}/x");
    let json = ("content-type", "application/json");
    let over_limit = vec![b' '; 3 * 1024 * 1024 + 1];
    let cases: Vec<RawRequest> = vec![
        (
            reqwest::Method::GET,
            format!("{collection}?limit=abc"),
            vec![],
            None,
        ),
        (
            reqwest::Method::GET,
            format!("{collection}?watch=true&timeoutSeconds=x"),
            vec![],
            None,
        ),
        (
            reqwest::Method::GET,
            format!("{object}?pretty=a&pretty=b"),
            vec![],
            None,
        ),
        (
            reqwest::Method::POST,
            format!("{collection}?dryRun=Nope"),
            vec![json],
            Some(b"{".to_vec()),
        ),
        (
            reqwest::Method::POST,
            collection.to_string(),
            vec![json],
            Some(over_limit.clone()),
        ),
        (
            reqwest::Method::PUT,
            object.clone(),
            vec![],
            Some(b"not json".to_vec()),
        ),
        (
            reqwest::Method::DELETE,
            object.clone(),
            vec![json],
            Some(b"{".to_vec()),
        ),
    ];
    for (method, path, headers, body) in &cases {
        let (code, answer) = send_raw(&server, method.clone(), path, headers, body.clone()).await;
        assert_eq!(code, 401, "{method} {path}: {answer:#}");
        assert_eq!(answer["reason"], "Unauthorized");
    }
    // Bob is known but may not touch namespace a: 403, not 400/413.
    for (method, path, headers, body) in cases {
        let mut headers = headers;
        headers.push(("authorization", "Bearer bob-token"));
        if method == reqwest::Method::GET {
            continue; // bob may read a
        }
        let (code, answer) = send_raw(&server, method.clone(), &path, &headers, body).await;
        assert_eq!(code, 403, "{method} {path}: {answer:#}");
    }
    server.stop().await;
}
