//! The JSend envelope (`API.md` §3): `{"status":"success","data":…}` for 2xx,
//! `{"status":"fail","data":{"code":"…","message":"…"}}` for 4xx (the string
//! `data.code` is what the TS SDK reads) and
//! `{"status":"error","message":"…","code":<int>}` for 5xx (the Python SDK
//! reads the top-level `code` with `int()`, so it must be an integer).
//! Lists are `{"data":[…],"pagination":{total,limit,offset,count}}` inside
//! `data`; `pagination` is never `null` (the Python SDK crashes on it).

use serde::Serialize;

use crate::codes::ErrorCode;

/// A JSend success envelope.
#[derive(Debug, Serialize)]
pub struct Success<T> {
    status: &'static str,
    /// The payload.
    pub data: T,
}

impl<T> Success<T> {
    /// Wraps `data` in `{"status":"success","data":…}`.
    pub fn new(data: T) -> Self {
        Self {
            status: "success",
            data,
        }
    }
}

/// The `data` of a 4xx `fail` envelope.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FailData {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
}

/// A JSend fail envelope (client errors).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Fail {
    /// Always `"fail"`.
    #[schema(example = "fail")]
    status: &'static str,
    /// The payload.
    pub data: FailData,
}

impl Fail {
    /// `{"status":"fail","data":{"code":…,"message":…}}`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: "fail",
            data: FailData {
                code,
                message: message.into(),
            },
        }
    }
}

/// A JSend error envelope (server errors); `code` is the HTTP status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// Always `"error"`.
    #[schema(example = "error")]
    status: &'static str,
    /// Human-readable message.
    pub message: String,
    /// The HTTP status, as an integer (the Python SDK parses it with `int()`).
    pub code: u16,
}

impl ErrorEnvelope {
    /// `{"status":"error","message":…,"code":<status>}`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status: "error",
            message: message.into(),
            code: status,
        }
    }
}

/// Pagination block of a list response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Pagination {
    /// Every item matching the query, across all pages.
    pub total: u64,
    /// Page size (after clamping).
    pub limit: u32,
    /// Items skipped before this page.
    pub offset: u64,
    /// Items in this page.
    pub count: u32,
}

/// The `data` of a paginated list: items and the pagination block.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListPage<T> {
    /// The payload.
    pub data: Vec<T>,
    /// Totals for paging.
    pub pagination: Pagination,
}

impl<T> ListPage<T> {
    /// Builds a page; `count` is taken from the items.
    pub fn new(data: Vec<T>, total: u64, limit: u32, offset: u64) -> Self {
        let count = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Self {
            data,
            pagination: Pagination {
                total,
                limit,
                offset,
                count,
            },
        }
    }

    /// One page cut out of a complete in-memory list (small catalogs).
    pub fn slice(all: Vec<T>, limit: u32, offset: u64) -> Self {
        let total = all.len() as u64;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let items: Vec<T> = all.into_iter().skip(start).take(limit as usize).collect();
        Self::new(items, total, limit, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn success_wraps_data() {
        let v = serde_json::to_value(Success::new(json!({"up": true}))).unwrap();
        assert_eq!(v, json!({"status": "success", "data": {"up": true}}));
    }

    #[test]
    fn fail_has_string_code_in_data() {
        let v =
            serde_json::to_value(Fail::new(ErrorCode::NotFound, "sandbox x not found")).unwrap();
        assert_eq!(
            v,
            json!({"status": "fail", "data": {"code": "not_found", "message": "sandbox x not found"}})
        );
    }

    #[test]
    fn error_has_integer_code() {
        let v = serde_json::to_value(ErrorEnvelope::new(500, "internal error")).unwrap();
        assert_eq!(
            v,
            json!({"status": "error", "message": "internal error", "code": 500})
        );
        assert!(v["code"].is_u64());
    }

    #[test]
    fn list_page_slices_and_counts() {
        let page = ListPage::slice(vec![1, 2, 3, 4, 5], 2, 3);
        let v = serde_json::to_value(&page).unwrap();
        assert_eq!(
            v,
            json!({"data": [4, 5], "pagination": {"total": 5, "limit": 2, "offset": 3, "count": 2}})
        );
        let past_end = ListPage::slice(vec![1, 2], 10, 7);
        assert_eq!(past_end.pagination.count, 0);
        assert_eq!(past_end.pagination.total, 2);
    }
}
