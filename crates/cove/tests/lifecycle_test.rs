//! Sandbox lifecycle against a live `cove serve` with real runc sandboxes:
//! create (synchronous, running, measured), get, by-ip, list with filters and
//! paging, PATCH, destroy (idempotent, the row stays readable), envelopes and
//! request ids, and env values never leaving the server.

mod common;

use common::{unique, TempServer};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn create_get_list_patch_destroy_round_trip() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("alice")?;
    let name = unique("life");
    let sb = api
        .create(json!({ "name": name, "rootfs": "devbox:1" }))
        .await?;
    let id = sb["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sb_"), "{id}");
    assert_eq!(sb["name"], name.as_str());
    assert!(sb["spawn_ms"].as_f64().unwrap() > 0.0, "{sb}");
    let ip = sb["ip"].as_str().unwrap().to_string();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");

    // The sandbox really runs: its hostname is the name, the agent answers.
    let host = api.exec(&id, "hostname", &[]).await?;
    assert_eq!(host.stdout.trim(), name);
    // `ip` in the view is the address inside the sandbox.
    let addr = api.sh(&id, "ip -4 -o addr show scope global").await?;
    assert!(addr.stdout.contains(&ip), "{} lacks {ip}", addr.stdout);

    let got = api.sandbox(&id).await?;
    assert_eq!(got["status"], "running");
    assert_eq!(got["ip"], ip.as_str());
    assert!(got["created_at"].as_str().unwrap().ends_with('Z'));
    let by_ip = api.get(&format!("/v1/sandboxes/by-ip/{ip}")).await?;
    assert_eq!(by_ip["id"], id.as_str());

    let running = api.get("/v1/sandboxes?status=running").await?;
    assert!(running["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == id.as_str()));
    assert_eq!(running["pagination"]["total"], 1);

    let patched = api
        .send(
            Method::PATCH,
            &format!("/v1/sandboxes/{id}"),
            Some(json!({ "ingress_enabled": true })),
        )
        .await?
        .data()?;
    assert_eq!(patched["ingress_enabled"], true);
    assert_eq!(patched["status"], "running", "PATCH returns a full view");
    let patched = api
        .send(
            Method::PATCH,
            &format!("/v1/sandboxes/{id}"),
            Some(json!({ "auto_pause_after_seconds": 120 })),
        )
        .await?
        .data()?;
    assert_eq!(patched["auto_pause_after_seconds"], 120);
    assert_eq!(
        patched["ingress_enabled"], true,
        "omitted fields are unchanged"
    );
    let patched = api
        .send(
            Method::PATCH,
            &format!("/v1/sandboxes/{id}"),
            Some(json!({ "disable_auto_pause": true })),
        )
        .await?
        .data()?;
    assert!(
        patched.get("auto_pause_after_seconds").is_none()
            || patched["auto_pause_after_seconds"].is_null()
    );
    let bad = api
        .send(
            Method::PATCH,
            &format!("/v1/sandboxes/{id}"),
            Some(json!({ "auto_pause_after_seconds": 30 })),
        )
        .await?;
    assert_eq!(bad.status, 400, "{}", bad.text());

    let del = api
        .send(Method::DELETE, &format!("/v1/sandboxes/{id}"), None)
        .await?
        .data()?;
    assert_eq!(del["id"], id.as_str());
    assert!(
        del["status"] == "destroying" || del["status"] == "destroyed",
        "{del}"
    );
    api.wait_status(&id, "destroyed", std::time::Duration::from_secs(60))
        .await?;
    let again = api
        .send(Method::DELETE, &format!("/v1/sandboxes/{id}"), None)
        .await?
        .data()?;
    assert_eq!(again["status"], "destroyed", "DELETE is idempotent");
    let exec = api
        .send(
            Method::POST,
            &format!("/v1/sandboxes/{id}/exec"),
            Some(json!({ "cmd": "true" })),
        )
        .await?;
    assert!(exec.status == 409 || exec.status == 404, "{}", exec.status);
    // The address is free again: by-ip no longer finds a live sandbox.
    let gone = api
        .send(Method::GET, &format!("/v1/sandboxes/by-ip/{ip}"), None)
        .await?;
    assert!(gone.status == 404 || gone.json()?["data"]["status"] == "destroyed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn list_pages_with_limit_offset_and_totals() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("pager")?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            api.create(json!({})).await?["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    api.destroy(&ids[2]).await?;
    let mut seen = Vec::new();
    for offset in 0..3 {
        let page = api
            .get(&format!("/v1/sandboxes?limit=1&offset={offset}"))
            .await?;
        assert_eq!(page["pagination"]["total"], 3, "{page}");
        assert_eq!(page["pagination"]["limit"], 1);
        assert_eq!(page["pagination"]["offset"], offset);
        assert_eq!(page["pagination"]["count"], 1);
        seen.push(page["data"][0]["id"].as_str().unwrap().to_string());
    }
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want, "pages cover every sandbox once");
    let running = api.get("/v1/sandboxes?status=running").await?;
    assert_eq!(running["pagination"]["total"], 2);
    let destroyed = api.get("/v1/sandboxes?status=destroyed").await?;
    assert_eq!(destroyed["pagination"]["total"], 1);
    assert_eq!(destroyed["data"][0]["id"], ids[2].as_str());
    let clamped = api.get("/v1/sandboxes?limit=100000").await?;
    assert!(clamped["pagination"]["limit"].as_u64().unwrap() <= 500);
    let bad = api
        .send(Method::GET, "/v1/sandboxes?status=bogus", None)
        .await?;
    assert_eq!(bad.status, 400, "{}", bad.text());
    let me = api.get("/v1/whoami").await?;
    assert_eq!(me["stats"]["running"], 2);
    assert_eq!(
        me["stats"]["total"], 2,
        "total counts non-destroyed sandboxes"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn env_values_never_appear_in_any_response() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("envs")?;
    let secret = format!("value-{}", unique("secret"));
    let sb = api
        .create(json!({ "envs": { "MY_SECRET": secret, "OTHER": "x" } }))
        .await?;
    let id = sb["id"].as_str().unwrap().to_string();
    let mut bodies = vec![sb.to_string()];
    for path in [
        format!("/v1/sandboxes/{id}"),
        "/v1/sandboxes".to_string(),
        "/v1/sandboxes?status=running".to_string(),
        format!("/v1/sandboxes/by-ip/{}", sb["ip"].as_str().unwrap()),
        "/v1/whoami".to_string(),
    ] {
        bodies.push(api.send(Method::GET, &path, None).await?.text());
    }
    bodies.push(
        api.send(
            Method::PATCH,
            &format!("/v1/sandboxes/{id}"),
            Some(json!({ "ingress_enabled": true })),
        )
        .await?
        .text(),
    );
    // An exec that does not print the value must not carry it either.
    let exec = api
        .send(
            Method::POST,
            &format!("/v1/sandboxes/{id}/exec"),
            Some(json!({ "cmd": "true", "env": { "PER_EXEC": secret } })),
        )
        .await?;
    bodies.push(exec.text());
    for b in &bodies {
        assert!(!b.contains(&secret), "env value leaked in {b}");
    }
    let view = api.sandbox(&id).await?;
    let mut names: Vec<_> = view["envs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["MY_SECRET", "OTHER"]);
    // The value is in the sandbox's exec environment, though.
    let out = api.exec(&id, "printenv", &["MY_SECRET"]).await?;
    assert_eq!(out.stdout.trim(), secret);
    // ...and not in the server's log.
    api.destroy(&id).await?;
    assert!(
        !server.log_tail(100_000).contains(&secret),
        "env value in the server log"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn create_validation_and_errors_use_jsend_fail_with_codes() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("val")?;
    let shape = api.shape().await?;
    let cases = [
        json!({ "shape": "no-such-shape" }),
        json!({ "shape": shape["id"], "rootfs": "nope:1" }),
        json!({ "shape": shape["id"], "envs": { "1BAD": "x" } }),
        json!({ "shape": shape["id"], "envs": { "BIG": "x".repeat(4097) } }),
        json!({ "shape": shape["id"], "auto_pause_after_seconds": 59 }),
        json!({ "shape": shape["id"], "auto_pause_after_seconds": 86401 }),
        json!({ "shape": shape["id"], "region": "elsewhere-9" }),
        json!({ "shape": shape["id"], "egress": ["not a host:port:x"] }),
        json!({ "shape": shape["id"], "name": "Bad Name!" }),
    ];
    for body in cases {
        let r = api
            .send(Method::POST, "/v1/sandboxes", Some(body.clone()))
            .await?;
        assert!(
            r.status == 400 || r.status == 422,
            "{body} -> {} {}",
            r.status,
            r.text()
        );
        assert!(!r.fail_code()?.is_empty());
        assert!(r.headers.contains_key("x-request-id"));
    }
    let many: serde_json::Map<String, serde_json::Value> =
        (0..65).map(|i| (format!("K{i}"), json!("v"))).collect();
    let r = api
        .send(
            Method::POST,
            "/v1/sandboxes",
            Some(json!({ "shape": shape["id"], "envs": many })),
        )
        .await?;
    assert_eq!(r.status, 400, "65 envs: {}", r.text());
    let r = api
        .send(
            Method::POST,
            "/v1/sandboxes",
            Some(json!({ "shape": shape["id"], "host_id": "no-such-host" })),
        )
        .await?;
    assert!(
        r.status == 503 || r.status == 400 || r.status == 404,
        "host_id: {}",
        r.text()
    );
    if r.status == 503 {
        assert!(r.headers.contains_key("retry-after"));
    }
    let r = api.send(Method::GET, "/v1/sandboxes/sb_nope", None).await?;
    assert_eq!(r.status, 404);
    assert!(!r.fail_code()?.is_empty());
    let r = common::http_client()
        .get(api.url("/v1/whoami"))
        .send()
        .await?;
    assert_eq!(r.status(), 401, "no key");
    let bogus = server.api_for("cove_bogus_key");
    let r = bogus.send(Method::GET, "/v1/whoami", None).await?;
    assert_eq!(r.status, 401);
    assert!(!r.fail_code()?.is_empty());
    // Bearer works as well as X-Api-Key.
    let r = common::http_client()
        .get(api.url("/v1/whoami"))
        .bearer_auth(api.key())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    // Nothing was created by the refused requests.
    assert!(api.live_ids().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_and_metrics_describe_the_live_server() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("ops")?;
    let id = api.create(json!({})).await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.exec(&id, "true", &[]).await?;

    let http = common::http_client();
    let doc: serde_json::Value = http
        .get(format!("{}/openapi.json", server.base()))
        .send()
        .await?
        .json()
        .await?;
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with('3'),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/v1/sandboxes",
        "/v1/sandboxes/{id}",
        "/v1/sandboxes/by-ip/{ip}",
        "/v1/sandboxes/{id}/exec",
        "/v1/sandboxes/{id}/files",
        "/v1/shapes",
        "/v1/rootfs",
        "/v1/whoami",
        "/v1/hosts",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }

    let metrics = http
        .get(format!("{}/metrics", server.base()))
        .send()
        .await?
        .text()
        .await?;
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{metrics}"))
            .to_string()
    };
    assert!(line("cove_sandboxes{status=\"running\"}").ends_with(" 1"));
    assert!(line("cove_sandbox_create_seconds_count").ends_with(" 1"));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cove_http_requests_total") && l.contains("status=\"200\"")),
        "no request counter:\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("exec") && l.contains("_count") && !l.ends_with(" 0")),
        "no exec latency observed:\n{metrics}"
    );
    assert!(!metrics.contains(api.key()), "an API key in /metrics");
    Ok(())
}
