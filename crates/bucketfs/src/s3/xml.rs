//! The XML bodies S3 answers with (ListObjectsV2, multipart, copy, errors)
//! and the one we send (CompleteMultipartUpload), via `quick-xml`'s serde
//! support. Parsing only: no request is ever signed from here.
//!
//! S3 can answer CompleteMultipartUpload, CopyObject and UploadPartCopy with
//! `200 OK` and an `<Error>` document (the failure happens after headers were
//! sent), so every success body is checked for an `<Error>` root first.

use quick_xml::events::Event;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::client::CompletedPart;

/// `<Error>`: the body of every S3 failure.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub code: String,
}

/// `<ListBucketResult>` of ListObjectsV2.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListBucketResult {
    #[serde(default)]
    pub is_truncated: bool,
    #[serde(default)]
    pub next_continuation_token: Option<String>,
    #[serde(default)]
    pub contents: Vec<ListContents>,
    #[serde(default)]
    pub common_prefixes: Vec<ListCommonPrefix>,
    /// `url` when keys and prefixes are percent-encoded (we always ask for
    /// it: XML 1.0 cannot carry every byte a key may hold).
    #[serde(default)]
    pub encoding_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListContents {
    pub key: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, rename = "ETag")]
    pub etag: String,
    #[serde(default)]
    pub last_modified: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListCommonPrefix {
    pub prefix: String,
}

/// `<InitiateMultipartUploadResult>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct InitiateResult {
    pub upload_id: String,
}

/// `<CompleteMultipartUploadResult>`, `<CopyObjectResult>` and
/// `<CopyPartResult>`: all we need from each is the new ETag.
#[derive(Debug, Deserialize)]
pub(super) struct ETagResult {
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// Why a body could not be used.
#[derive(Debug)]
pub(super) enum XmlError {
    /// The document is an `<Error>` with this code.
    S3(String),
    /// Not the document we expected.
    Invalid(String),
}

/// The name of the document's root element.
fn root_name(body: &[u8]) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                return Some(String::from_utf8_lossy(e.name().as_ref()).into_owned())
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => buf.clear(),
        }
    }
}

/// The `<Code>` of an error document, if `body` is one.
pub(super) fn error_code(body: &[u8]) -> Option<String> {
    if root_name(body).as_deref() != Some("Error") {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    quick_xml::de::from_str::<ErrorBody>(text)
        .ok()
        .map(|e| e.code)
}

/// Parses a success document of type `T`, unless it is an `<Error>`.
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, XmlError> {
    if let Some(code) = error_code(body) {
        return Err(XmlError::S3(code));
    }
    let text = std::str::from_utf8(body).map_err(|e| XmlError::Invalid(e.to_string()))?;
    quick_xml::de::from_str(text).map_err(|e| XmlError::Invalid(e.to_string()))
}

/// The CompleteMultipartUpload request body.
pub(super) fn complete_body(parts: &[CompletedPart]) -> String {
    let mut s = String::with_capacity(64 + parts.len() * 96);
    s.push_str("<CompleteMultipartUpload>");
    for p in parts {
        s.push_str("<Part><PartNumber>");
        s.push_str(&p.part_number.to_string());
        s.push_str("</PartNumber><ETag>");
        s.push_str(&quick_xml::escape::escape(p.etag.as_str()));
        s.push_str("</ETag></Part>");
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ETag;

    #[test]
    fn list_result_with_contents_and_prefixes_parses() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>d%2F</Prefix>
<KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>%2F</Delimiter><IsTruncated>true</IsTruncated>
<Contents><Key>d%2Fa%20b</Key><LastModified>2026-11-25T16:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>d%2Fc</Key><LastModified>2026-11-25T16:00:01.000Z</LastModified><ETag>"def"</ETag><Size>0</Size></Contents>
<CommonPrefixes><Prefix>d%2Fsub%2F</Prefix></CommonPrefixes>
<NextContinuationToken>tok</NextContinuationToken><EncodingType>url</EncodingType></ListBucketResult>"#;
        let r: ListBucketResult = parse(body).expect("parses");
        assert!(r.is_truncated);
        assert_eq!(r.contents.len(), 2);
        assert_eq!(r.contents[0].key, "d%2Fa%20b");
        assert_eq!(r.contents[0].etag, "\"abc\"");
        assert_eq!(r.contents[0].size, 5);
        assert_eq!(r.common_prefixes[0].prefix, "d%2Fsub%2F");
        assert_eq!(r.next_continuation_token.as_deref(), Some("tok"));
        assert_eq!(r.encoding_type.as_deref(), Some("url"));
    }

    #[test]
    fn empty_list_result_parses() {
        let body = br#"<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        let r: ListBucketResult = parse(body).expect("parses");
        assert!(r.contents.is_empty() && r.common_prefixes.is_empty() && !r.is_truncated);
    }

    #[test]
    fn error_document_in_a_200_is_detected() {
        let body = br#"<?xml version="1.0"?><Error><Code>InternalError</Code><Message>x</Message></Error>"#;
        match parse::<ETagResult>(body) {
            Err(XmlError::S3(code)) => assert_eq!(code, "InternalError"),
            other => panic!("expected an S3 error, got {other:?}"),
        }
    }

    #[test]
    fn complete_body_escapes_etags() {
        let parts = [CompletedPart {
            part_number: 1,
            etag: ETag("\"a<b\"".into()),
        }];
        let body = complete_body(&parts);
        assert!(body.contains("<PartNumber>1</PartNumber>"));
        assert!(body.contains("&quot;a&lt;b&quot;"), "{body}");
    }
}
