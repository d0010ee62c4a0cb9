//! Who is asking, and whether they may.
//!
//! **Authentication** reads a token file in the format of kube-apiserver's
//! `--token-auth-file`: one `token,user,uid,"group1,group2"` per line. A
//! token arrives as `Authorization: Bearer <token>` (Kubernetes) or as
//! `X-Auth-Token: <token>` (CCI). Tokens are compared in constant time and
//! against every entry, so response timing says nothing about how close a
//! guess was or which entry matched. Without a token file every request is
//! `system:anonymous` in group `system:unauthenticated`; the binary allows
//! that only on loopback unless told otherwise.
//!
//! **Authorization** reads a JSON policy of rules that grant verbs on
//! resources in namespaces to users and groups (`*` matches anything), or,
//! as Kubernetes RBAC's `nonResourceURLs`, verbs on paths outside the
//! resources (`/metrics`, `/backup`) — a rule grants one kind or the other.
//! Without a policy file every authenticated user may do everything.
//! Authorization runs before anything is read from storage and its answer
//! depends only on the user, verb and namespace, so a denied user learns
//! nothing about which objects exist.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use serde::Deserialize;

use mxjob_api::error::{ApiError, QUALIFIED_RESOURCE};

/// The resource name of namespaces, the one core resource served.
pub const NAMESPACES: &str = "namespaces";

/// The verbs of the Kubernetes authorization model this API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    /// The verb a name means (as Kubernetes spells verbs).
    pub fn parse(name: &str) -> Option<Verb> {
        [
            Verb::Get,
            Verb::List,
            Verb::Watch,
            Verb::Create,
            Verb::Update,
            Verb::Patch,
            Verb::Delete,
            Verb::DeleteCollection,
        ]
        .into_iter()
        .find(|verb| verb.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// Whether the verb changes stored state (and is audited).
    pub fn is_mutating(self) -> bool {
        !matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

/// An authenticated (or anonymous) caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl User {
    /// The caller when no token file is configured.
    pub fn anonymous() -> Self {
        User {
            name: "system:anonymous".to_string(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".to_string()],
        }
    }
}

/// The entries of a token file.
#[derive(Clone, Debug, Default)]
pub struct TokenFile {
    entries: Vec<(Vec<u8>, User)>,
}

/// Why a token file or a policy file was refused; each names the place.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    In {
        path: std::path::PathBuf,
        source: Box<ConfigError>,
    },
    #[error("line {line}: {why}")]
    TokenLine { line: usize, why: &'static str },
    #[error("the token file has no entries")]
    NoTokens,
    #[error("invalid policy: {0}")]
    PolicyJson(#[from] serde_json::Error),
    #[error("rule {rule}: {why}")]
    PolicyRule { rule: usize, why: String },
}

impl ConfigError {
    fn read(path: &Path, source: std::io::Error) -> Self {
        ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    fn within(self, path: &Path) -> Self {
        ConfigError::In {
            path: path.to_path_buf(),
            source: Box::new(self),
        }
    }
}

/// Splits one CSV line, honouring double quotes (`""` is a quote).
fn csv_fields(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote");
    }
    fields.push(field);
    Ok(fields)
}

impl TokenFile {
    /// Parses the file's text; errors name the line.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |why: &'static str| ConfigError::TokenLine {
                line: number + 1,
                why,
            };
            let fields = csv_fields(line).map_err(at)?;
            if fields.len() < 3 {
                return Err(at("expected token,user,uid[,\"group1,group2\"]"));
            }
            let (token, name, uid) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
            if token.is_empty() || name.is_empty() {
                return Err(at("the token and the user name must not be empty"));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            let user = User {
                name: name.to_string(),
                uid: uid.to_string(),
                groups,
            };
            entries.push((token.as_bytes().to_vec(), user));
        }
        if entries.is_empty() {
            return Err(ConfigError::NoTokens);
        }
        Ok(TokenFile { entries })
    }

    /// Reads and parses a token file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::read(path, e))?;
        Self::parse(&text).map_err(|e| e.within(path))
    }

    /// The user a token belongs to. Every entry is compared, each in
    /// constant time.
    fn lookup(&self, token: &[u8]) -> Option<&User> {
        let mut found = None;
        for (candidate, user) in &self.entries {
            if constant_time_eq(candidate, token) {
                found = Some(user);
            }
        }
        found
    }
}

/// Compares without an early exit (`subtle`); only the lengths can leak.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// One grant of an authorization policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Users granted (by name).
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups granted.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Namespaces, or `*` (a rule on resources).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Paths outside the API's resources — `/metrics`, `/backup` — or
    /// `*`, or a prefix ending in `*` (a rule on non-resource URLs, as in
    /// Kubernetes RBAC; such a rule names no namespaces and no resources).
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    /// Verbs (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`), or `*`.
    pub verbs: Vec<String>,
    /// Resources (`mxjobs`, `mxjobs/status`), or `*`; default both.
    #[serde(default = "all_resources")]
    pub resources: Vec<String>,
}

fn all_resources() -> Vec<String> {
    vec!["*".to_string()]
}

/// An authorization policy: `{"rules": [...]}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "*",
];

impl Policy {
    /// Parses a policy; unknown verbs and resources are errors, so a typo
    /// cannot silently grant or deny.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let policy: Policy = serde_json::from_str(text)?;
        let refused = |rule: usize, why: String| ConfigError::PolicyRule { rule, why };
        for (i, rule) in policy.rules.iter().enumerate() {
            if let Some(verb) = rule.verbs.iter().find(|v| !VERBS.contains(&v.as_str())) {
                return Err(refused(i, format!("unknown verb {verb:?}")));
            }
            if let Some(resource) = rule
                .resources
                .iter()
                .find(|r| !["mxjobs", "mxjobs/status", NAMESPACES, "*"].contains(&r.as_str()))
            {
                return Err(refused(i, format!("unknown resource {resource:?}")));
            }
            if rule.users.is_empty() && rule.groups.is_empty() {
                return Err(refused(i, "names no users and no groups".to_string()));
            }
            match (
                rule.namespaces.is_empty(),
                rule.non_resource_urls.is_empty(),
            ) {
                (true, true) => {
                    return Err(refused(
                        i,
                        "names no namespaces and no nonResourceURLs".into(),
                    ))
                }
                (false, false) => {
                    return Err(refused(
                        i,
                        "names both namespaces and nonResourceURLs (one rule grants either \
                         resources or non-resource URLs, as in Kubernetes RBAC)"
                            .into(),
                    ))
                }
                _ => {}
            }
        }
        Ok(policy)
    }

    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::read(path, e))?;
        Self::parse(&text).map_err(|e| e.within(path))
    }

    /// Whether a rule grants `user` the lowercase HTTP `verb` on `path`
    /// outside the resources.
    fn allows_path(&self, user: &User, verb: &str, path: &str) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        let covers = |pattern: &String| match pattern.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => pattern == path,
        };
        self.rules.iter().any(|rule| {
            (any(&rule.users, &user.name) || user.groups.iter().any(|g| any(&rule.groups, g)))
                && any(&rule.verbs, verb)
                && rule.non_resource_urls.iter().any(covers)
        })
    }

    fn allows(&self, user: &User, verb: Verb, resource: &str, namespace: &str) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        self.rules.iter().any(|rule| {
            (any(&rule.users, &user.name) || user.groups.iter().any(|g| any(&rule.groups, g)))
                && any(&rule.namespaces, namespace)
                && any(&rule.verbs, verb.as_str())
                && any(&rule.resources, resource)
        })
    }
}

/// Authentication, authorization and per-user limits, as configured.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    tokens: Option<TokenFile>,
    policy: Option<Policy>,
    /// Concurrent watches a user may hold (`None`: no limit).
    max_watches: Option<usize>,
    watches: Arc<Mutex<HashMap<String, usize>>>,
}

impl Auth {
    pub fn new(
        tokens: Option<TokenFile>,
        policy: Option<Policy>,
        max_watches: Option<usize>,
    ) -> Self {
        Auth {
            tokens,
            policy,
            max_watches,
            watches: Arc::default(),
        }
    }

    /// Whether requests need a token.
    pub fn requires_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// The caller of a request: 401 without a valid token when tokens are
    /// configured.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<User, ApiError> {
        let Some(tokens) = &self.tokens else {
            return Ok(User::anonymous());
        };
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let cci = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let token = bearer
            .or(cci)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        tokens
            .lookup(token.as_bytes())
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }

    /// 403 unless the policy grants `verb` on `resource` in `namespace`.
    pub fn authorize(
        &self,
        user: &User,
        verb: Verb,
        resource: &str,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<(), ApiError> {
        match &self.policy {
            Some(policy) if !policy.allows(user, verb, resource, namespace) => {
                let (group_resource, sub) = match resource.split_once('/') {
                    Some((r, sub)) => (r, Some(sub)),
                    None => (resource, None),
                };
                // Namespaces are the one core resource here.
                let (qualified, group) = if group_resource == NAMESPACES {
                    (NAMESPACES, "")
                } else {
                    (QUALIFIED_RESOURCE, "kubeflow.org")
                };
                let subject = match name {
                    Some(name) => format!("{qualified} {name:?}"),
                    None => qualified.to_string(),
                };
                let what = match sub {
                    Some(sub) => format!("resource \"{group_resource}/{sub}\""),
                    None => format!("resource \"{group_resource}\""),
                };
                let scope = if namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace {namespace:?}")
                };
                Err(ApiError::forbidden(
                    name.unwrap_or_default(),
                    format!(
                        "{subject} is forbidden: User {:?} cannot {} {what} in API group \
                         {group:?} {scope}",
                        user.name,
                        verb.as_str()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// 403 unless the policy grants the lowercase HTTP `verb` on `path`, a
    /// URL outside the resources (see [`Rule::non_resource_urls`]).
    pub fn authorize_path(&self, user: &User, verb: &str, path: &str) -> Result<(), ApiError> {
        match &self.policy {
            Some(policy) if !policy.allows_path(user, verb, path) => {
                Err(ApiError::forbidden_message(format!(
                    "forbidden: User {:?} cannot {verb} path {path:?}",
                    user.name
                )))
            }
            _ => Ok(()),
        }
    }

    /// The watches open now, of all users.
    pub fn open_watches(&self) -> usize {
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// A slot for one more watch by `user`, released when dropped; 429 when
    /// the user holds the maximum already.
    pub fn start_watch(&self, user: &User) -> Result<WatchSlot, ApiError> {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let held = watches.entry(user.name.clone()).or_default();
        if self.max_watches.is_some_and(|max| *held >= max) {
            return Err(ApiError::too_many_requests(format!(
                "too many watches: user {:?} already holds {held}",
                user.name
            )));
        }
        *held += 1;
        Ok(WatchSlot {
            user: user.name.clone(),
            watches: Arc::clone(&self.watches),
        })
    }
}

/// One open watch of one user; see [`Auth::start_watch`].
#[derive(Debug)]
pub struct WatchSlot {
    user: String,
    watches: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = watches.get_mut(&self.user) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                watches.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_parse_with_quoted_groups() {
        let file = TokenFile::parse("# comment\nabc123,alice,1001,\"team-a,ops\"\nxyz,bob,1002\n")
            .expect("parses");
        let alice = file.lookup(b"abc123").expect("alice");
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, ["team-a", "ops"]);
        assert_eq!(file.lookup(b"xyz").map(|u| u.name.as_str()), Some("bob"));
        assert!(file.lookup(b"abc12").is_none());
        assert!(file.lookup(b"").is_none());
    }

    #[test]
    fn malformed_token_files_are_refused_with_the_line() {
        for (text, line) in [
            ("abc,alice", "line 1"),
            ("\nabc,\"alice,1", "line 2"),
            (",alice,1", "line 1"),
        ] {
            let error = TokenFile::parse(text).expect_err(text);
            assert!(error.to_string().starts_with(line), "{error}");
        }
        assert!(TokenFile::parse("# nothing\n").is_err());
    }

    #[test]
    fn policy_grants_by_user_group_namespace_and_verb() {
        let policy = Policy::parse(
            r#"{"rules": [
                {"users": ["alice"], "namespaces": ["a"], "verbs": ["*"]},
                {"groups": ["readers"], "namespaces": ["*"], "verbs": ["get", "list", "watch"], "resources": ["mxjobs"]}
            ]}"#,
        )
        .expect("parses");
        let alice = User {
            name: "alice".into(),
            uid: String::new(),
            groups: vec![],
        };
        let reader = User {
            name: "rita".into(),
            uid: String::new(),
            groups: vec!["readers".into()],
        };
        assert!(policy.allows(&alice, Verb::Delete, "mxjobs", "a"));
        assert!(!policy.allows(&alice, Verb::Get, "mxjobs", "b"));
        assert!(policy.allows(&reader, Verb::List, "mxjobs", "b"));
        assert!(!policy.allows(&reader, Verb::Create, "mxjobs", "b"));
        assert!(!policy.allows(&reader, Verb::Get, "mxjobs/status", "b"));
    }

    #[test]
    fn policies_with_typos_are_refused() {
        assert!(Policy::parse(
            r#"{"rules": [{"users": ["a"], "namespaces": ["*"], "verbs": ["gett"]}]}"#
        )
        .is_err());
        assert!(Policy::parse(r#"{"rules": [{"users": ["a"], "namespaces": ["*"], "verbs": ["get"], "resources": ["pods"]}]}"#).is_err());
        assert!(Policy::parse(r#"{"rules": [{"namespaces": ["*"], "verbs": ["get"]}]}"#).is_err());
        assert!(Policy::parse(r#"{"rules": [], "extra": 1}"#).is_err());
    }

    #[test]
    fn non_resource_rules_grant_paths_and_nothing_else() {
        let policy = Policy::parse(
            r#"{"rules": [
                {"groups": ["monitoring"], "nonResourceURLs": ["/metrics"], "verbs": ["get"]},
                {"users": ["ops"], "nonResourceURLs": ["/back*"], "verbs": ["*"]},
                {"users": ["admin"], "namespaces": ["*"], "verbs": ["*"]}
            ]}"#,
        )
        .expect("parses");
        let user = |name: &str, group: &str| User {
            name: name.into(),
            uid: String::new(),
            groups: vec![group.into()],
        };
        let prometheus = user("prometheus", "monitoring");
        assert!(policy.allows_path(&prometheus, "get", "/metrics"));
        assert!(!policy.allows_path(&prometheus, "get", "/backup"));
        assert!(!policy.allows(&prometheus, Verb::Get, "mxjobs", "a"));
        assert!(policy.allows_path(&user("ops", ""), "get", "/backup"));
        let admin = user("admin", "");
        assert!(policy.allows(&admin, Verb::Delete, "mxjobs", "a"));
        assert!(!policy.allows_path(&admin, "get", "/metrics"));
        let auth = Auth::new(None, Some(policy), None);
        assert_eq!(
            auth.authorize_path(&User::anonymous(), "get", "/metrics")
                .map_err(|e| (e.code(), e.message().to_string())),
            Err((
                403,
                "forbidden: User \"system:anonymous\" cannot get path \"/metrics\"".to_string()
            ))
        );
        assert!(Policy::parse(
            r#"{"rules": [{"users": ["a"], "namespaces": ["*"], "nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}"#
        )
        .is_err());
        assert!(Policy::parse(r#"{"rules": [{"users": ["a"], "verbs": ["get"]}]}"#).is_err());
    }

    #[test]
    fn forbidden_messages_have_the_kubernetes_shape() {
        let auth = Auth::new(None, Some(Policy { rules: vec![] }), None);
        let user = User::anonymous();
        let error = auth
            .authorize(&user, Verb::Get, "mxjobs", "b", Some("x"))
            .expect_err("denied");
        assert_eq!(error.code(), 403);
        assert_eq!(
            error.message(),
            "mxjobs.kubeflow.org \"x\" is forbidden: User \"system:anonymous\" cannot get resource \
             \"mxjobs\" in API group \"kubeflow.org\" in the namespace \"b\""
        );
        let error = auth
            .authorize(&user, Verb::List, "mxjobs", "b", None)
            .expect_err("denied");
        assert!(error
            .message()
            .starts_with("mxjobs.kubeflow.org is forbidden: User"));
    }

    #[test]
    fn watch_slots_are_counted_per_user_and_released_on_drop() {
        let auth = Auth::new(None, None, Some(2));
        let user = User::anonymous();
        let first = auth.start_watch(&user).expect("first");
        let _second = auth.start_watch(&user).expect("second");
        assert_eq!(
            auth.start_watch(&user).map(|_| ()).map_err(|e| e.code()),
            Err(429)
        );
        drop(first);
        assert!(auth.start_watch(&user).is_ok());
    }

    #[test]
    fn both_token_headers_authenticate() {
        let auth = Auth::new(
            Some(TokenFile::parse("t0k3n,carol,7").expect("parses")),
            None,
            None,
        );
        let mut headers = HeaderMap::new();
        assert_eq!(auth.authenticate(&headers).map_err(|e| e.code()), Err(401));
        headers.insert("authorization", "Bearer t0k3n".parse().expect("header"));
        assert_eq!(
            auth.authenticate(&headers).map(|u| u.name),
            Ok("carol".to_string())
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-auth-token", "t0k3n".parse().expect("header"));
        assert_eq!(
            auth.authenticate(&headers).map(|u| u.name),
            Ok("carol".to_string())
        );
        headers.insert("x-auth-token", "wrong".parse().expect("header"));
        assert_eq!(auth.authenticate(&headers).map_err(|e| e.code()), Err(401));
    }
}
