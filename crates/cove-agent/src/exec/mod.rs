//! Exec: run an argv inside the sandbox, buffered (`run.rs`) or streamed
//! (`stream.rs`). Both share the request parsing (`request.rs`) and the
//! process session (`session.rs`), which spawns, pumps stdin and output,
//! sends heartbeats and kills the process group when the client goes away.

mod request;
pub mod run;
mod session;
pub mod stream;
