//! Test harness: `app(state)` over a `MockRuntime` and a temporary SQLite,
//! with two users and their keys, driven by `tower::ServiceExt::oneshot`.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use cove_runtime::mock::MockRuntime;
use cove_server::mounts::memory::MemoryMounter;
use cove_server::{app, AppConfig, AppState};
use cove_store::{ServerKey, SqliteStore};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub struct Harness {
    pub state: AppState,
    pub mock: Arc<MockRuntime>,
    pub mounter: Arc<MemoryMounter>,
    pub alice: String,
    pub bob: String,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `data` of a success envelope, asserting the envelope.
    pub fn data(&self) -> Value {
        let v = self.json();
        assert_eq!(v["status"], "success", "{v}");
        v["data"].clone()
    }

    /// The `data.code` of a fail envelope, asserting the status.
    pub fn fail_code(&self, status: u16) -> String {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        assert_eq!(v["status"], "fail", "{v}");
        v["data"]["code"].as_str().unwrap().to_owned()
    }
}

pub async fn harness() -> Harness {
    harness_with(
        AppConfig {
            heartbeat: Duration::from_millis(50),
            ..AppConfig::default()
        },
        MockRuntime::new(),
    )
    .await
}

pub async fn harness_with(config: AppConfig, mock: MockRuntime) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("cove.db"), ServerKey::generate())
            .await
            .unwrap(),
    );
    let mock = Arc::new(mock);
    let mounter = Arc::new(MemoryMounter::default());
    let state = AppState::new(store.clone(), mock.clone(), mounter.clone(), config);
    use cove_store::Store;
    let a = store.ensure_user("alice").await.unwrap();
    let b = store.ensure_user("bob").await.unwrap();
    let alice = store.create_api_key(&a.id).await.unwrap().into_inner();
    let bob = store.create_api_key(&b.id).await.unwrap().into_inner();
    Harness {
        state,
        mock,
        mounter,
        alice,
        bob,
        _dir: dir,
    }
}

impl Harness {
    pub fn app(&self) -> Router {
        app(self.state.clone())
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.app().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    pub async fn get(&self, uri: &str, key: &str) -> Reply {
        self.call(Method::GET, uri, Some(key), None).await
    }

    pub async fn post(&self, uri: &str, key: &str, body: Value) -> Reply {
        self.call(Method::POST, uri, Some(key), Some(body)).await
    }

    /// Creates a running sandbox for `key` and returns its view.
    pub async fn create(&self, key: &str, body: Value) -> Value {
        let r = self.post("/v1/sandboxes", key, body).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        r.data()
    }
}
