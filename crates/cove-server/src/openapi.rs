//! The OpenAPI 3 document, generated from the handler annotations and the
//! `cove-api` types (served at `GET /openapi.json`). Response schemas are the
//! `data` member; every JSON answer is wrapped in the JSend envelope.

use utoipa::OpenApi;

use crate::handlers;

/// cove's API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "cove", description = "Self-hosted sandboxes speaking the CreateOS Sandbox API v1. \
        JSON answers are JSend envelopes: {\"status\":\"success\",\"data\":…}; 4xx are \
        {\"status\":\"fail\",\"data\":{code,message}}; 5xx are {\"status\":\"error\",message,code}."),
    paths(
        handlers::system::healthz,
        handlers::system::readyz,
        handlers::catalog::shapes_list,
        handlers::catalog::rootfs_list,
        handlers::catalog::whoami_get,
        handlers::catalog::hosts_list,
        handlers::sandboxes::sandboxes_create,
        handlers::sandboxes::sandboxes_list,
        handlers::sandboxes::sandboxes_get,
        handlers::sandboxes::sandboxes_get_by_ip,
        handlers::sandboxes::sandboxes_patch,
        handlers::sandboxes::sandboxes_delete,
        handlers::exec::sandboxes_exec,
        handlers::files::files_upload,
        handlers::files::files_download,
        handlers::lifecycle::sandboxes_pause,
        handlers::lifecycle::sandboxes_resume,
        handlers::lifecycle::sandboxes_fork,
        handlers::lifecycle::sandboxes_resize,
        handlers::lifecycle::sandboxes_ssh_pubkeys,
        handlers::disks::disks_create,
        handlers::disks::disks_list,
        handlers::disks::disks_get,
        handlers::disks::disks_patch,
        handlers::disks::disks_delete,
        handlers::disks::attachments_list,
        handlers::disks::attachments_create,
        handlers::disks::attachments_delete,
        handlers::disks::attachments_patch,
    ),
    components(schemas(
        cove_api::envelope::Fail,
        cove_api::envelope::ErrorEnvelope,
        cove_api::exec::ExecStreamFrame,
    )),
    modifiers(&ApiKeyAuth),
    security(("api_key" = []), ("bearer" = []))
)]
pub struct ApiDoc;

/// Declares the two accepted credentials.
struct ApiKeyAuth;

impl utoipa::Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
