//! A small client for cove's HTTP API as the SDKs speak it (API.md): JSend
//! envelopes, `X-Api-Key`, exec buffered and NDJSON-streamed, raw-byte files.
//! Deliberately independent of cove's own types, so a server bug in a type
//! cannot be hidden by the same type on the client side.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// One API key against one server address.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// A whole response: status, headers and body.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "body is not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(400)])
            )
        })
    }

    /// `data` of a JSend success envelope; an error naming the response
    /// otherwise.
    pub fn data(&self) -> Result<Value> {
        let v = self.json()?;
        if !self.status.is_success() || v["status"] != "success" {
            bail!("expected success, got {}: {v}", self.status);
        }
        Ok(v["data"].clone())
    }

    /// `data.code` of a JSend fail envelope.
    pub fn fail_code(&self) -> Result<String> {
        let v = self.json()?;
        if v["status"] != "fail" {
            bail!("expected a fail envelope, got {}: {v}", self.status);
        }
        v["data"]["code"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no data.code in {v}"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Buffered exec result (`data.result` plus `exec_ms`).
#[derive(Debug)]
pub struct ExecOut {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i64,
    pub error: Option<String>,
    pub exec_ms: f64,
}

const JSON_TIMEOUT: Duration = Duration::from_secs(180);

impl Api {
    pub fn new(base: String, key: String) -> Self {
        Self {
            http: super::http_client(),
            base,
            key,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("X-Api-Key", &self.key)
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Result<Resp> {
        let mut req = self.request(method, path).timeout(JSON_TIMEOUT);
        if let Some(b) = body {
            req = req.json(&b);
        }
        collect(req.send().await?).await
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(Method::GET, path, None).await?.data()
    }

    /// The smallest shape in the catalog, or `COVE_TEST_SHAPE`.
    pub async fn shape(&self) -> Result<Value> {
        let page = self.get("/v1/shapes").await?;
        let shapes = page["data"].as_array().context("shapes list")?.clone();
        if let Ok(wanted) = std::env::var("COVE_TEST_SHAPE") {
            return shapes
                .into_iter()
                .find(|s| s["id"] == wanted.as_str())
                .with_context(|| format!("COVE_TEST_SHAPE={wanted} not in the catalog"));
        }
        shapes
            .into_iter()
            .min_by_key(|s| s["mem_mib"].as_u64().unwrap_or(u64::MAX))
            .context("no shapes")
    }

    /// `POST /v1/sandboxes` with `extra` merged over `{shape}`; returns the
    /// created view, checked to be running.
    pub async fn create(&self, extra: Value) -> Result<Value> {
        let shape = self.shape().await?;
        let mut body = json!({ "shape": shape["id"] });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let resp = self.send(Method::POST, "/v1/sandboxes", Some(body)).await?;
        let data = resp.data()?;
        if data["status"] != "running" {
            bail!("created sandbox is not running: {data}");
        }
        Ok(data)
    }

    pub async fn sandbox(&self, id: &str) -> Result<Value> {
        self.get(&format!("/v1/sandboxes/{id}")).await
    }

    pub async fn exec(&self, id: &str, cmd: &str, args: &[&str]) -> Result<ExecOut> {
        self.exec_body(id, json!({ "cmd": cmd, "args": args }))
            .await
    }

    pub async fn sh(&self, id: &str, script: &str) -> Result<ExecOut> {
        self.exec(id, "bash", &["-c", script]).await
    }

    pub async fn exec_body(&self, id: &str, body: Value) -> Result<ExecOut> {
        let resp = self
            .send(
                Method::POST,
                &format!("/v1/sandboxes/{id}/exec"),
                Some(body),
            )
            .await?;
        let data = resp.data()?;
        let r = &data["result"];
        Ok(ExecOut {
            stdout: r["stdout"].as_str().unwrap_or_default().to_string(),
            stderr: r["stderr"].as_str().unwrap_or_default().to_string(),
            exit_code: r["exit_code"].as_i64().context("exit_code")?,
            error: r["error"].as_str().map(str::to_string),
            exec_ms: data["exec_ms"].as_f64().context("exec_ms")?,
        })
    }

    /// Starts a streamed exec; the 200 response's frames are read with
    /// `FrameReader`. Dropping the reader disconnects.
    pub async fn exec_stream(&self, id: &str, mut body: Value) -> Result<FrameReader> {
        body["stream"] = json!(true);
        let resp = self
            .request(
                Method::POST,
                &format!("/v1/sandboxes/{id}/exec?stream=true"),
            )
            .json(&body)
            .send()
            .await?;
        if resp.status() != StatusCode::OK {
            let r = collect(resp).await?;
            bail!("exec stream answered {}: {}", r.status, r.text());
        }
        Ok(FrameReader {
            resp,
            buf: Vec::new(),
        })
    }

    pub async fn upload(
        &self,
        id: &str,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<Resp> {
        let req = self
            .request(Method::PUT, &format!("/v1/sandboxes/{id}/files"))
            .query(&[("path", path)])
            .header("Content-Type", "application/octet-stream")
            .body(body);
        collect(req.send().await?).await
    }

    pub async fn download(&self, id: &str, path: &str) -> Result<Resp> {
        collect(self.download_stream(id, path).await?).await
    }

    pub async fn download_stream(&self, id: &str, path: &str) -> Result<reqwest::Response> {
        Ok(self
            .request(Method::GET, &format!("/v1/sandboxes/{id}/files"))
            .query(&[("path", path)])
            .send()
            .await?)
    }

    /// DELETE, then poll until `destroyed`.
    pub async fn destroy(&self, id: &str) -> Result<()> {
        let r = self
            .send(Method::DELETE, &format!("/v1/sandboxes/{id}"), None)
            .await?;
        r.data()?;
        self.wait_status(id, "destroyed", Duration::from_secs(90))
            .await
    }

    pub async fn wait_status(&self, id: &str, want: &str, budget: Duration) -> Result<()> {
        let deadline = Instant::now() + budget;
        loop {
            let v = self.sandbox(id).await?;
            if v["status"] == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "sandbox {id} is {} after {budget:?}, wanted {want}",
                    v["status"]
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every sandbox of this key that is not destroyed or failed.
    pub async fn live_ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .get(&format!("/v1/sandboxes?limit=500&offset={offset}"))
                .await?;
            let items = page["data"].as_array().context("list data")?;
            for s in items {
                if s["status"] != "destroyed" && s["status"] != "failed" {
                    ids.push(s["id"].as_str().unwrap_or_default().to_string());
                }
            }
            offset += items.len() as u64;
            let total = page["pagination"]["total"].as_u64().unwrap_or(0);
            if items.is_empty() || offset >= total {
                return Ok(ids);
            }
        }
    }

    pub async fn destroy_all(&self) -> Result<()> {
        for id in self.live_ids().await? {
            if let Err(e) = self.destroy(&id).await {
                eprintln!("cleanup: destroy {id}: {e:#}");
            }
        }
        Ok(())
    }
}

pub async fn collect(resp: reqwest::Response) -> Result<Resp> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// Reads NDJSON frames from a streamed response as they arrive.
pub struct FrameReader {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next frame, `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = std::str::from_utf8(&line)?.trim();
                if line.is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(line)
                    .with_context(|| format!("frame is not JSON: {line}"))?;
                if !v.is_object() {
                    bail!("frame is not an object: {line}");
                }
                return Ok(Some(v));
            }
            // Heartbeats come at least every 5 s, so a silent stream is
            // broken; fail instead of hanging the test run.
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.resp.chunk())
                .await
                .context("no byte on the exec stream for 30 s (heartbeats missing)")??;
            match chunk {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None if self.buf.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                None => self.buf.push(b'\n'),
            }
        }
    }

    /// Reads to the end: (stdout, stderr, exit code, heartbeat count).
    pub async fn finish(mut self) -> Result<(String, String, Option<i64>, usize)> {
        let (mut out, mut err, mut code, mut hb) = (String::new(), String::new(), None, 0);
        while let Some(f) = self.next().await? {
            if code.is_some() {
                bail!("frame after exit_code: {f}");
            }
            if f["hb"] == true {
                hb += 1;
            }
            if let Some(s) = f["stdout"].as_str() {
                out.push_str(s);
            }
            if let Some(s) = f["stderr"].as_str() {
                err.push_str(s);
            }
            if let Some(c) = f["exit_code"].as_i64() {
                code = Some(c);
            }
        }
        Ok((out, err, code, hb))
    }

    pub fn headers(&self) -> &reqwest::header::HeaderMap {
        self.resp.headers()
    }

    /// Consumes the raw body stream (for byte counting without parsing).
    pub fn into_stream(self) -> impl futures_util::Stream<Item = reqwest::Result<Bytes>> {
        self.resp.bytes_stream().boxed()
    }
}
