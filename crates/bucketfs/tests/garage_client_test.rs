//! Contract tests of the S3 `ObjectClient` against a real garage on
//! loopback: ranges, conditional reads, listing with delimiter and
//! continuation past 1,000 keys, multipart, UploadPartCopy, copy with
//! metadata, odd characters in keys, and authentication failures.

mod common;
#[path = "common/garage.rs"]
mod garage;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use bucketfs::client::{
    CompletedPart, CopyObjectParams, CreateMultipartUploadParams, ETag, GetObjectParams,
    ListObjectsParams, MetadataDirective, ObjectClient, ObjectClientError, PutObjectParams,
    UploadId, UploadPartCopyParams,
};
use bucketfs::s3::{Credentials, Op, S3Client};
use bytes::Bytes;
use cove_testkit::garage::TempGarage;
use futures::StreamExt;
use garage::{s3_client, s3_config};

const MIB: usize = 1024 * 1024;

/// A fresh garage, a bucket and a client on it.
fn setup() -> (TempGarage, S3Client) {
    let g = TempGarage::start().expect("start garage");
    let bucket = g.create_unique_bucket("c").expect("bucket");
    let client = s3_client(&g, &bucket);
    (g, client)
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn put(c: &S3Client, key: &str, body: Bytes) -> ETag {
    c.put_object(key, body, &PutObjectParams::default())
        .await
        .unwrap_or_else(|e| panic!("put {key:?}: {e}"))
        .etag
}

async fn get(c: &S3Client, key: &str) -> Result<Bytes, ObjectClientError> {
    c.get_object(key, &GetObjectParams::default())
        .await
        .map(|r| r.body)
}

fn range(r: std::ops::Range<u64>) -> GetObjectParams {
    GetObjectParams {
        range: Some(r),
        if_match: None,
    }
}

#[tokio::test]
async fn ranged_gets_return_exact_bytes_and_object_size() {
    let (_g, c) = setup();
    let body = pattern(100_000, 1);
    let etag = put(&c, "r", body.clone()).await;

    let whole = c
        .get_object("r", &GetObjectParams::default())
        .await
        .unwrap();
    assert_eq!(whole.body, body);
    assert_eq!(whole.object_size, 100_000);
    assert_eq!(whole.etag, etag);

    let mid = c.get_object("r", &range(10..20_000)).await.unwrap();
    assert_eq!(mid.body, body.slice(10..20_000));
    assert_eq!(mid.object_size, 100_000);

    let clamped = c.get_object("r", &range(99_990..200_000)).await.unwrap();
    assert_eq!(clamped.body, body.slice(99_990..));

    let past = c.get_object("r", &range(100_000..100_010)).await;
    assert!(
        matches!(past, Err(ObjectClientError::InvalidRange { .. })),
        "{past:?}"
    );

    let stale = GetObjectParams {
        range: None,
        if_match: Some(ETag("\"0123456789abcdef\"".into())),
    };
    let r = c.get_object("r", &stale).await;
    assert!(
        matches!(r, Err(ObjectClientError::PreconditionFailed { .. })),
        "{r:?}"
    );
    let fresh = GetObjectParams {
        range: Some(0..5),
        if_match: Some(etag),
    };
    assert_eq!(
        c.get_object("r", &fresh).await.unwrap().body,
        body.slice(0..5)
    );
}

#[tokio::test]
async fn head_and_get_of_missing_key_are_no_such_key_and_delete_is_idempotent() {
    let (_g, c) = setup();
    assert!(matches!(
        c.head_object("nope").await,
        Err(ObjectClientError::NoSuchKey { .. })
    ));
    assert!(matches!(
        get(&c, "nope").await,
        Err(ObjectClientError::NoSuchKey { .. })
    ));
    c.delete_object("nope").await.unwrap();
    put(&c, "k", Bytes::from_static(b"x")).await;
    c.delete_object("k").await.unwrap();
    assert!(matches!(
        get(&c, "k").await,
        Err(ObjectClientError::NoSuchKey { .. })
    ));
    assert_eq!(c.stats().retries(Op::Get), 0, "404 must not be retried");
}

#[tokio::test]
async fn put_round_trips_metadata_content_type_and_empty_bodies() {
    let (_g, c) = setup();
    let params = PutObjectParams {
        metadata: meta(&[("mode", "33188"), ("uid", "1000"), ("mtime", "1700000000")]),
        content_type: Some("application/x-directory".into()),
        condition: None,
    };
    c.put_object("d/", Bytes::new(), &params).await.unwrap();
    let h = c.head_object("d/").await.unwrap();
    assert_eq!(h.size, 0);
    assert_eq!(h.metadata, params.metadata);
    assert_eq!(h.content_type.as_deref(), Some("application/x-directory"));
    let g = c
        .get_object("d/", &GetObjectParams::default())
        .await
        .unwrap();
    assert!(g.body.is_empty());
    assert_eq!(g.metadata, params.metadata);
}

#[tokio::test]
async fn list_with_delimiter_and_continuation_over_1000_keys() {
    let (_g, c) = setup();
    let mut expected_files = Vec::new();
    for i in 0..1_105 {
        expected_files.push(format!("big/f{i:05}"));
    }
    let dirs = ["big/sub1/", "big/sub2/"];
    let mut all: Vec<String> = expected_files.clone();
    all.extend(dirs.iter().map(|d| format!("{d}x")));
    all.push("other/y".into());
    futures::stream::iter(all.iter())
        .for_each_concurrent(32, |k| {
            let c = c.clone();
            async move {
                put(&c, k, Bytes::from(k.clone())).await;
            }
        })
        .await;

    let mut params = ListObjectsParams {
        prefix: "big/".into(),
        delimiter: Some("/".into()),
        ..Default::default()
    };
    let (mut files, mut prefixes, mut pages) = (Vec::new(), Vec::new(), 0);
    loop {
        let page = c.list_objects(&params).await.unwrap();
        pages += 1;
        files.extend(page.objects.iter().map(|o| o.key.clone()));
        prefixes.extend(page.common_prefixes);
        for o in &page.objects {
            assert_eq!(o.size, o.key.len() as u64);
        }
        match page.next_continuation_token {
            Some(t) => params.continuation_token = Some(t),
            None => break,
        }
    }
    assert!(pages >= 2, "1,107 entries must take more than one page");
    assert_eq!(files, expected_files);
    assert_eq!(prefixes, dirs);

    // Small pages and start-after.
    let page = c
        .list_objects(&ListObjectsParams {
            prefix: "big/".into(),
            delimiter: Some("/".into()),
            max_keys: Some(3),
            start_after: Some("big/f00100".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["big/f00101", "big/f00102", "big/f00103"]);
    assert!(page.next_continuation_token.is_some());
}

#[tokio::test]
async fn multipart_upload_assembles_parts_and_abort_discards_them() {
    let (_g, c) = setup();
    let params = CreateMultipartUploadParams {
        metadata: meta(&[("mode", "33261")]),
        content_type: None,
    };
    let id = c.create_multipart_upload("mp", &params).await.unwrap();
    let p1 = pattern(5 * MIB, 1);
    let p2 = pattern(5 * MIB, 2);
    let p3 = pattern(1234, 3);
    let (r1, r2, r3) = tokio::join!(
        c.upload_part("mp", &id, 1, p1.clone()),
        c.upload_part("mp", &id, 2, p2.clone()),
        c.upload_part("mp", &id, 3, p3.clone()),
    );
    let parts: Vec<_> = [r1, r2, r3]
        .into_iter()
        .enumerate()
        .map(|(i, r)| CompletedPart {
            part_number: i as u32 + 1,
            etag: r.unwrap().etag,
        })
        .collect();
    assert!(
        matches!(
            get(&c, "mp").await,
            Err(ObjectClientError::NoSuchKey { .. })
        ),
        "not visible before completion"
    );
    c.complete_multipart_upload("mp", &id, &parts, None)
        .await
        .unwrap();
    let got = c
        .get_object("mp", &GetObjectParams::default())
        .await
        .unwrap();
    assert_eq!(got.body.len(), 10 * MIB + 1234);
    assert_eq!(got.body, [p1, p2, p3].concat());
    assert_eq!(got.metadata, params.metadata);

    let id2 = c
        .create_multipart_upload("ab", &CreateMultipartUploadParams::default())
        .await
        .unwrap();
    let e = c
        .upload_part("ab", &id2, 1, pattern(100, 0))
        .await
        .unwrap()
        .etag;
    c.abort_multipart_upload("ab", &id2).await.unwrap();
    let done = c
        .complete_multipart_upload(
            "ab",
            &id2,
            &[CompletedPart {
                part_number: 1,
                etag: e,
            }],
            None,
        )
        .await;
    assert!(
        matches!(done, Err(ObjectClientError::NoSuchUpload { .. })),
        "{done:?}"
    );
    assert!(matches!(
        get(&c, "ab").await,
        Err(ObjectClientError::NoSuchKey { .. })
    ));
    let bogus = c
        .upload_part("ab", &UploadId("nonexistent".into()), 1, pattern(1, 0))
        .await;
    assert!(bogus.is_err());
}

#[tokio::test]
async fn parts_sent_from_a_file_by_sendfile_assemble_and_fail_like_parts_from_memory() {
    let (g, c) = setup();
    let data = pattern(13 * MIB, 7);
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(&data).unwrap();
    let file = Arc::new(f);
    let id = c
        .create_multipart_upload("sf", &CreateMultipartUploadParams::default())
        .await
        .unwrap();
    let six = 6 * MIB as u64;
    // Two parts from the file at once (two connections), a third from
    // memory, then more parts over the kept connections.
    let (r1, r2) = tokio::join!(
        c.upload_part_from_file("sf", &id, 1, Arc::clone(&file), 0, six),
        c.upload_part_from_file("sf", &id, 2, Arc::clone(&file), six, six),
    );
    let r3 = c.upload_part("sf", &id, 3, data.slice(12 * MIB..)).await;
    let mut parts: Vec<_> = [r1, r2, r3]
        .into_iter()
        .enumerate()
        .map(|(i, r)| CompletedPart {
            part_number: i as u32 + 1,
            etag: r.unwrap().etag,
        })
        .collect();
    for _ in 0..3 {
        // Resending part 1 replaces it (same bytes, same ETag).
        let again = c
            .upload_part_from_file("sf", &id, 1, Arc::clone(&file), 0, six)
            .await
            .unwrap();
        assert_eq!(again.etag, parts[0].etag);
    }
    parts[0].etag = c
        .upload_part_from_file("sf", &id, 1, Arc::clone(&file), 0, six)
        .await
        .unwrap()
        .etag;
    c.complete_multipart_upload("sf", &id, &parts, None)
        .await
        .unwrap();
    assert_eq!(get(&c, "sf").await.unwrap(), data);
    assert_eq!(c.stats().requests(Op::UploadPart), 7);
    assert_eq!(c.stats().total_retries(), 0);

    // Errors are those of a part from memory.
    let bogus = UploadId("nonexistent".into());
    let from_memory = c.upload_part("x", &bogus, 1, data.slice(..10)).await;
    let from_file = c
        .upload_part_from_file("x", &bogus, 1, Arc::clone(&file), 0, 10)
        .await;
    assert!(from_file.is_err(), "{from_file:?}");
    assert_eq!(format!("{from_file:?}"), format!("{from_memory:?}"));
    let mut config = s3_config(&g, &c.config().bucket);
    config.credentials = Some(Credentials::new(g.key_id(), "0".repeat(64)));
    let bad = S3Client::new(config).unwrap();
    let id2 = c
        .create_multipart_upload("sf2", &CreateMultipartUploadParams::default())
        .await
        .unwrap();
    let denied = bad
        .upload_part_from_file("sf2", &id2, 1, Arc::clone(&file), 0, 10)
        .await;
    assert!(
        matches!(denied, Err(ObjectClientError::AccessDenied { .. })),
        "{denied:?}"
    );
    // A range past the end of the file (a staged file truncated while
    // its part was on the way) fails at once, without retries.
    let short = c
        .upload_part_from_file("sf2", &id2, 1, Arc::clone(&file), 13 * MIB as u64 - 10, 100)
        .await;
    assert!(
        matches!(short, Err(ObjectClientError::LocalRead { .. })),
        "{short:?}"
    );
    assert_eq!(c.stats().total_retries(), 0);
}

#[tokio::test]
async fn upload_part_copy_reuses_ranges_of_an_existing_object() {
    let (_g, c) = setup();
    let base = pattern(12 * MIB, 7);
    let tag = put(&c, "base", base.clone()).await;
    // Rewrite: keep [0, 5 MiB) and [10 MiB, 12 MiB) from the server, replace the middle.
    let id = c
        .create_multipart_upload("base", &CreateMultipartUploadParams::default())
        .await
        .unwrap();
    let copy = |r: std::ops::Range<u64>| UploadPartCopyParams {
        source_key: "base".into(),
        source_range: r,
        source_if_match: Some(tag.clone()),
    };
    let a = c
        .upload_part_copy("base", &id, 1, &copy(0..5 * MIB as u64))
        .await
        .unwrap();
    let middle = pattern(5 * MIB, 9);
    let b = c.upload_part("base", &id, 2, middle.clone()).await.unwrap();
    let tail = copy(10 * MIB as u64..12 * MIB as u64);
    let t = c.upload_part_copy("base", &id, 3, &tail).await.unwrap();
    let parts = [(1, a.etag), (2, b.etag), (3, t.etag)].map(|(n, etag)| CompletedPart {
        part_number: n,
        etag,
    });
    c.complete_multipart_upload("base", &id, &parts, None)
        .await
        .unwrap();
    let got = get(&c, "base").await.unwrap();
    let want = [base.slice(0..5 * MIB), middle, base.slice(10 * MIB..)].concat();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "content differs");

    // A stale source tag refuses the copy.
    let id = c
        .create_multipart_upload("x", &CreateMultipartUploadParams::default())
        .await
        .unwrap();
    let r = c.upload_part_copy("x", &id, 1, &copy(0..10)).await;
    assert!(
        matches!(r, Err(ObjectClientError::PreconditionFailed { .. })),
        "{r:?}"
    );
    c.abort_multipart_upload("x", &id).await.unwrap();
}

#[tokio::test]
async fn copy_keeps_or_replaces_metadata_and_checks_the_source() {
    let (_g, c) = setup();
    let params = PutObjectParams {
        metadata: meta(&[("mode", "33188"), ("uid", "7")]),
        content_type: Some("text/plain".into()),
        condition: None,
    };
    let tag = c
        .put_object("src", Bytes::from_static(b"payload"), &params)
        .await
        .unwrap()
        .etag;
    let keep = CopyObjectParams {
        metadata_directive: MetadataDirective::Copy,
        source_if_match: Some(tag.clone()),
    };
    c.copy_object("src", "kept", &keep).await.unwrap();
    let h = c.head_object("kept").await.unwrap();
    assert_eq!(h.metadata, params.metadata);
    assert_eq!(h.content_type.as_deref(), Some("text/plain"));
    assert_eq!(get(&c, "kept").await.unwrap(), &b"payload"[..]);

    let replace = CopyObjectParams {
        metadata_directive: MetadataDirective::Replace {
            metadata: meta(&[("mode", "33261"), ("gid", "9")]),
            content_type: Some("application/octet-stream".into()),
        },
        source_if_match: None,
    };
    c.copy_object("src", "replaced", &replace).await.unwrap();
    let h = c.head_object("replaced").await.unwrap();
    assert_eq!(h.metadata, meta(&[("mode", "33261"), ("gid", "9")]));
    assert_eq!(h.content_type.as_deref(), Some("application/octet-stream"));

    // Copying onto itself with REPLACE is how metadata changes (chmod).
    c.copy_object("src", "src", &replace).await.unwrap();
    assert_eq!(
        c.head_object("src").await.unwrap().metadata["mode"],
        "33261"
    );

    // A metadata-only change keeps the ETag (it is the content's MD5).
    assert_eq!(c.head_object("src").await.unwrap().etag, tag);
    let stale = CopyObjectParams {
        metadata_directive: MetadataDirective::Copy,
        source_if_match: Some(ETag("\"00000000000000000000000000000000\"".into())),
    };
    let r = c.copy_object("src", "stale", &stale).await;
    assert!(
        matches!(r, Err(ObjectClientError::PreconditionFailed { .. })),
        "{r:?}"
    );
    let r = c.copy_object("missing", "m2", &keep).await;
    assert!(
        matches!(&r, Err(ObjectClientError::NoSuchKey { key }) if key == "missing"),
        "{r:?}"
    );
}

#[tokio::test]
async fn odd_characters_in_keys_round_trip_through_put_get_list_copy_delete() {
    let (_g, c) = setup();
    let keys = [
        "odd/space in name",
        "odd/plus+sign",
        "odd/percent%20literal",
        "odd/question?mark#hash",
        "odd/ampersand&equals=semicolon;",
        "odd/quote\"apostrophe'",
        "odd/unicode-é-ü-日本-😀",
        "odd/brackets[]{}()<>",
        "odd/tilde~star*comma,colon:at@dollar$",
        "odd/double//slash",
        "odd/back\\slash",
        "odd/caret^pipe|backtick`",
        "odd/tab\tnewline\n",
    ];
    for k in keys {
        put(&c, k, Bytes::from(k.to_owned())).await;
        assert_eq!(get(&c, k).await.unwrap(), k.as_bytes(), "{k:?}");
    }
    let listed = c
        .list_objects(&ListObjectsParams {
            prefix: "odd/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut want: Vec<_> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    let got: Vec<_> = listed.objects.into_iter().map(|o| o.key).collect();
    assert_eq!(got, want);
    // Prefixes with odd characters in a delimited listing.
    let dl = c
        .list_objects(&ListObjectsParams {
            prefix: "odd/".into(),
            delimiter: Some("/".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dl.common_prefixes, ["odd/double/"]);
    let copy = CopyObjectParams {
        metadata_directive: MetadataDirective::Copy,
        source_if_match: None,
    };
    c.copy_object("odd/plus+sign", "odd/copy of plus+sign é", &copy)
        .await
        .unwrap();
    assert_eq!(
        get(&c, "odd/copy of plus+sign é").await.unwrap(),
        &b"odd/plus+sign"[..]
    );
    for k in keys {
        c.delete_object(k).await.unwrap();
        assert!(
            matches!(get(&c, k).await, Err(ObjectClientError::NoSuchKey { .. })),
            "{k:?}"
        );
    }
}

#[tokio::test]
async fn wrong_secret_is_access_denied_without_retries() {
    let (g, c) = setup();
    put(&c, "k", Bytes::from_static(b"v")).await;
    let mut config = s3_config(&g, &c.config().bucket);
    config.credentials = Some(Credentials::new(g.key_id(), "0".repeat(64)));
    let bad = S3Client::new(config).unwrap();
    for r in [
        get(&bad, "k").await.map(|_| ()),
        bad.put_object("k", Bytes::from_static(b"w"), &PutObjectParams::default())
            .await
            .map(|_| ()),
        bad.list_objects(&ListObjectsParams::default())
            .await
            .map(|_| ()),
        bad.head_object("k").await.map(|_| ()),
    ] {
        assert!(
            matches!(r, Err(ObjectClientError::AccessDenied { .. })),
            "{r:?}"
        );
    }
    assert_eq!(bad.stats().total_retries(), 0);
    assert_eq!(get(&c, "k").await.unwrap(), &b"v"[..], "object untouched");
}

#[tokio::test]
async fn unsigned_requests_carry_no_signature_and_garage_refuses_them() {
    // Garage has no anonymous access, so an unsigned client must be refused:
    // this proves `credentials: None` really sends unsigned requests (the
    // public-bucket mount test uses a server that allows them).
    let (g, c) = setup();
    put(&c, "k", Bytes::from_static(b"v")).await;
    let mut config = s3_config(&g, &c.config().bucket);
    config.credentials = None;
    let anon = S3Client::new(config).unwrap();
    let r = get(&anon, "k").await;
    assert!(
        matches!(r, Err(ObjectClientError::AccessDenied { .. })),
        "{r:?}"
    );
}

#[tokio::test]
async fn missing_bucket_is_no_such_bucket() {
    let (g, _c) = setup();
    let other = s3_client(&g, "does-not-exist");
    let r = other.list_objects(&ListObjectsParams::default()).await;
    assert!(
        matches!(r, Err(ObjectClientError::NoSuchBucket { .. })),
        "{r:?}"
    );
}

#[tokio::test]
async fn killed_server_gives_a_transient_error_after_counted_retries_and_restart_recovers() {
    let (mut g, c) = setup();
    put(&c, "before", Bytes::from_static(b"kept")).await;
    g.kill();
    let r = c
        .put_object(
            "during",
            Bytes::from_static(b"x"),
            &PutObjectParams::default(),
        )
        .await;
    let e = r.expect_err("server is down");
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(c.stats().retries(Op::Put), 2, "3 tries = 2 retries");
    // The same for a part sent from a file (its own connections).
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(b"part").unwrap();
    let part = c
        .upload_part_from_file("during", &UploadId("u".into()), 1, Arc::new(f), 0, 4)
        .await;
    let e = part.expect_err("server is down");
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(c.stats().retries(Op::UploadPart), 2);
    g.restart().expect("restart garage");
    assert_eq!(
        get(&c, "before").await.unwrap(),
        &b"kept"[..],
        "data survives a crash"
    );
    assert!(matches!(
        get(&c, "during").await,
        Err(ObjectClientError::NoSuchKey { .. })
    ));
}

#[tokio::test]
async fn website_access_serves_unsigned_gets_on_the_web_port_only() {
    // garage's only public access: the static-website endpoint (GET by key,
    // no listing). The S3 API itself stays signed-only.
    let (g, c) = setup();
    // A plain reqwest client needs a process-wide TLS provider (bucketfs
    // builds its own config and needs none).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bucket = c.config().bucket.clone();
    put(&c, "index.html", Bytes::from_static(b"<p>hi</p>")).await;
    let web = |key: &'static str| {
        let url = format!("http://127.0.0.1:{}/{key}", g.web_port());
        let host = format!("{bucket}.web.garage.localhost");
        async move {
            reqwest::Client::new()
                .get(url)
                .header("host", host)
                .send()
                .await
                .unwrap()
        }
    };
    assert!(
        !web("index.html").await.status().is_success(),
        "not public before"
    );
    g.allow_website(&bucket).unwrap();
    let r = web("index.html").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), &b"<p>hi</p>"[..]);
}
