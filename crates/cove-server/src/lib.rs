//! The HTTP control plane: app(state) -> Router, services, jobs
