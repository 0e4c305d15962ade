//! Two users against one live `cove serve`: each sees only their own
//! sandboxes, and every call on the other's id answers 404 (never 403, which
//! would confirm that the id exists).

mod common;

use common::TempServer;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn another_users_sandbox_answers_404_everywhere() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let alice = server.user("alice")?;
    let bob = server.user("bob")?;
    let sb = alice.create(json!({})).await?;
    let id = sb["id"].as_str().unwrap();
    let ip = sb["ip"].as_str().unwrap();
    alice.upload(id, "/root/alice.txt", "alice's").await?;
    let bobs = bob.create(json!({})).await?;

    let calls: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/v1/sandboxes/{id}"), None),
        (Method::GET, format!("/v1/sandboxes/by-ip/{ip}"), None),
        (
            Method::PATCH,
            format!("/v1/sandboxes/{id}"),
            Some(json!({ "ingress_enabled": true })),
        ),
        (
            Method::POST,
            format!("/v1/sandboxes/{id}/exec"),
            Some(json!({ "cmd": "touch", "args": ["/root/bob-was-here"] })),
        ),
        (
            Method::POST,
            format!("/v1/sandboxes/{id}/exec?stream=true"),
            Some(json!({ "cmd": "true", "stream": true })),
        ),
        (
            Method::GET,
            format!("/v1/sandboxes/{id}/files?path=%2Froot%2Falice.txt"),
            None,
        ),
        (Method::DELETE, format!("/v1/sandboxes/{id}"), None),
    ];
    for (method, path, body) in calls {
        let r = bob.send(method.clone(), &path, body).await?;
        assert_eq!(r.status, 404, "{method} {path}: {} {}", r.status, r.text());
        assert!(!r.text().contains("alice's"));
    }
    let r = bob.upload(id, "/root/alice.txt", "bob's").await?;
    assert_eq!(r.status, 404);

    let listed = bob.get("/v1/sandboxes").await?;
    let ids: Vec<_> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(ids, vec![bobs["id"].clone()], "bob sees only his own");
    assert_eq!(bob.get("/v1/whoami").await?["stats"]["total"], 1);
    assert_ne!(
        bob.get("/v1/whoami").await?["user_id"],
        alice.get("/v1/whoami").await?["user_id"]
    );

    // Alice's sandbox is untouched by every attempt.
    let view = alice.sandbox(id).await?;
    assert_eq!(view["status"], "running");
    assert_eq!(view["ingress_enabled"], false);
    assert_eq!(
        &alice.download(id, "/root/alice.txt").await?.body[..],
        b"alice's"
    );
    let ls = alice.exec(id, "ls", &["/root"]).await?;
    assert!(!ls.stdout.contains("bob-was-here"), "{}", ls.stdout);
    Ok(())
}
