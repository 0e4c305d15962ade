//! `MockRuntime`: an in-memory `Runtime` for the server's unit tests (feature `testing`).
