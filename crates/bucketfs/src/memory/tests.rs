//! Unit tests of the in-memory client's S3 behaviour.

use super::*;

fn put() -> PutObjectParams {
    PutObjectParams::default()
}

#[tokio::test]
async fn list_with_delimiter_pages_without_repeating_prefixes() {
    let c = MemoryClient::new();
    for k in ["a/1", "a/2", "b", "c/1", "d"] {
        c.put_object(k, Bytes::from_static(b"x"), &put())
            .await
            .unwrap();
    }
    let mut params = ListObjectsParams {
        delimiter: Some("/".into()),
        max_keys: Some(1),
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = c.list_objects(&params).await.unwrap();
        seen.extend(page.common_prefixes);
        seen.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_continuation_token {
            Some(t) => params.continuation_token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, ["a/", "b", "c/", "d"]);
}

#[tokio::test]
async fn conditional_put_refuses_stale_etag() {
    let c = MemoryClient::new();
    let first = c
        .put_object("k", Bytes::from_static(b"1"), &put())
        .await
        .unwrap();
    c.put_object("k", Bytes::from_static(b"2"), &put())
        .await
        .unwrap();
    let stale = PutObjectParams {
        condition: Some(PutCondition::IfMatch(first.etag)),
        ..put()
    };
    let e = c
        .put_object("k", Bytes::from_static(b"3"), &stale)
        .await
        .unwrap_err();
    assert!(matches!(e, ObjectClientError::PreconditionFailed { .. }));
    let create = PutObjectParams {
        condition: Some(PutCondition::IfNoneMatchAny),
        ..put()
    };
    assert!(c
        .put_object("k", Bytes::from_static(b"4"), &create)
        .await
        .is_err());
    assert_eq!(&c.object("k").unwrap().body[..], b"2");
}

#[tokio::test]
async fn multipart_with_part_copy_assembles_in_order() {
    let c = MemoryClient::with_capabilities(ClientCapabilities {
        min_part_size: 2,
        ..ClientCapabilities::default()
    });
    c.insert("src", &b"abcdef"[..], ObjectMetadata::new());
    let id = c
        .create_multipart_upload("dst", &Default::default())
        .await
        .unwrap();
    let p1 = c
        .upload_part_copy(
            "dst",
            &id,
            1,
            &UploadPartCopyParams {
                source_key: "src".into(),
                source_range: 0..3,
                source_if_match: None,
            },
        )
        .await
        .unwrap();
    let p2 = c
        .upload_part("dst", &id, 2, Bytes::from_static(b"XY"))
        .await
        .unwrap();
    let parts = [
        CompletedPart {
            part_number: 1,
            etag: p1.etag,
        },
        CompletedPart {
            part_number: 2,
            etag: p2.etag,
        },
    ];
    c.complete_multipart_upload("dst", &id, &parts, None)
        .await
        .unwrap();
    assert_eq!(&c.object("dst").unwrap().body[..], b"abcXY");
    assert_eq!(c.open_uploads(), 0);
}

#[tokio::test]
async fn range_past_end_is_clamped_and_start_past_end_fails() {
    let c = MemoryClient::new();
    c.insert("k", &b"hello"[..], ObjectMetadata::new());
    let got = c
        .get_object(
            "k",
            &GetObjectParams {
                range: Some(3..100),
                if_match: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(&got.body[..], b"lo");
    let e = c
        .get_object(
            "k",
            &GetObjectParams {
                range: Some(5..6),
                if_match: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ObjectClientError::InvalidRange { .. }));
}
