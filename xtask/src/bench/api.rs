//! The plain HTTP requests the bench makes around its measurements:
//! creating the objects, reading them back, waiting for the job
//! controller, listing.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The collection path of a namespace.
pub fn collection(namespace: &str) -> String {
    format!("/apis/kubeflow.org/v1/namespaces/{namespace}/mxjobs")
}

/// The seed job as a new object: its spec under another name.
pub fn new_job(seed: &Value, namespace: &str, name: &str) -> Value {
    let mut job = seed.clone();
    job["metadata"] = serde_json::json!({ "name": name, "namespace": namespace });
    if let Some(object) = job.as_object_mut() {
        object.remove("status");
    }
    job
}

/// A client of one server.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Api {
            http: reqwest::Client::new(),
            base: base.to_string(),
        }
    }

    pub async fn create(&self, seed: &Value, namespace: &str, name: &str) -> Result<Value> {
        let response = self
            .http
            .post(format!("{}{}", self.base, collection(namespace)))
            .json(&new_job(seed, namespace, name))
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        if status.as_u16() != 201 {
            bail!("creating {namespace}/{name} answered {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    pub async fn get(&self, namespace: &str, name: &str) -> Result<Value> {
        let response = self
            .http
            .get(format!("{}{}/{name}", self.base, collection(namespace)))
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        if status.as_u16() != 200 {
            bail!("reading {namespace}/{name} answered {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Replaces `object`; the answer and when it had been read whole.
    pub async fn replace(&self, object: &Value) -> Result<(Value, Instant)> {
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let response = self
            .http
            .put(format!("{}{}/{name}", self.base, collection(namespace)))
            .json(object)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        let acknowledged = Instant::now();
        if status.as_u16() != 200 {
            bail!(
                "replacing {namespace}/{name} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok((serde_json::from_slice(&body)?, acknowledged))
    }

    /// Reads the object until the job controller has admitted it (its
    /// status has a `startTime`), and returns it then.
    pub async fn admitted(&self, namespace: &str, name: &str) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let object = self.get(namespace, name).await?;
            if !object["status"]["startTime"].is_null() {
                return Ok(object);
            }
            if Instant::now() > deadline {
                bail!("the controller did not admit {namespace}/{name} within a minute");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Writes, through `/status` and as `mxjob-controller`, the status
    /// the job controller writes when it admits a job under `--executor
    /// none`, so that a server without the controller holds objects of
    /// the same shape and size as one with it.
    pub async fn admit_as_controller(&self, namespace: &str, name: &str) -> Result<Value> {
        let mut object = self.get(namespace, name).await?;
        let now = object["metadata"]["creationTimestamp"].clone();
        object["status"] = serde_json::json!({
            "conditions": [{
                "lastTransitionTime": now,
                "lastUpdateTime": now,
                "message": format!("MXJob {name} is created."),
                "reason": "MXJobCreated",
                "status": "True",
                "type": "Created",
            }],
            "lastReconcileTime": now,
            "startTime": now,
        });
        let response = self
            .http
            .put(format!(
                "{}{}/{name}/status?fieldManager=mxjob-controller",
                self.base,
                collection(namespace)
            ))
            .json(&object)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        if status.as_u16() != 200 {
            bail!("writing the status of {namespace}/{name} answered {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Creates `count` jobs named `PREFIX-N` from `concurrency` clients.
    pub async fn create_many(
        &self,
        seed: &Value,
        namespace: &str,
        prefix: &str,
        count: usize,
        concurrency: usize,
    ) -> Result<()> {
        let mut tasks = Vec::new();
        for client in 0..concurrency {
            let (api, seed, namespace, prefix) = (
                self.clone(),
                seed.clone(),
                namespace.to_string(),
                prefix.to_string(),
            );
            tasks.push(tokio::spawn(async move {
                for i in (client..count).step_by(concurrency) {
                    api.create(&seed, &namespace, &format!("{prefix}-{i}"))
                        .await?;
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(())
    }

    /// The store's revision, as a one-item list of `namespace` reports it.
    async fn revision(&self, namespace: &str) -> Result<u64> {
        let list: Value = self
            .http
            .get(format!("{}{}?limit=1", self.base, collection(namespace)))
            .send()
            .await?
            .json()
            .await?;
        list["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .context("the list has no resourceVersion")
    }

    /// Waits until nothing has been written for a second and a half (the
    /// job controller has admitted every job); at most ten minutes.
    pub async fn settle(&self, namespace: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut last = self.revision(namespace).await?;
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < Duration::from_millis(1500) {
            if Instant::now() > deadline {
                bail!("the store was still being written after ten minutes");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.revision(namespace).await?;
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
        }
        Ok(())
    }

    /// Lists `namespace` in pages of `limit`; returns the number of pages
    /// and of items.
    pub async fn list_paged(&self, namespace: &str, limit: usize) -> Result<(usize, usize)> {
        let (mut pages, mut items) = (0, 0);
        let mut token = String::new();
        loop {
            let mut request = self
                .http
                .get(format!("{}{}", self.base, collection(namespace)))
                .query(&[("limit", limit.to_string())]);
            if !token.is_empty() {
                request = request.query(&[("continue", &token)]);
            }
            let response = request.send().await?;
            if response.status().as_u16() != 200 {
                bail!("a list page answered {}", response.status());
            }
            let page: Value = response.json().await?;
            pages += 1;
            items += page["items"].as_array().map_or(0, Vec::len);
            token = page["metadata"]["continue"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if token.is_empty() {
                return Ok((pages, items));
            }
        }
    }

    /// Lists `namespace` in one answer; returns its items and the size of
    /// the answer's body.
    pub async fn list_all(&self, namespace: &str) -> Result<(Vec<Value>, usize)> {
        let response = self
            .http
            .get(format!("{}{}", self.base, collection(namespace)))
            .send()
            .await?;
        if response.status().as_u16() != 200 {
            bail!("the list answered {}", response.status());
        }
        let body = response.bytes().await?;
        let mut list: Value = serde_json::from_slice(&body)?;
        let items = match list["items"].take() {
            Value::Array(items) => items,
            _ => bail!("the list has no items"),
        };
        Ok((items, body.len()))
    }
}
