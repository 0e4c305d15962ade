//! Reads the exec request body: the `Spec` frame first, then `Stdin` frames
//! handed to the session as they arrive.

use bytes::Bytes;
use cove_api::agent::{ExecRequest, FrameDecoder, FrameKind};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// The request body after its `Spec` frame.
pub struct RequestFrames {
    body: Incoming,
    decoder: FrameDecoder,
    done: bool,
}

impl RequestFrames {
    /// Reads until the `Spec` frame and parses it.
    pub async fn open(body: Incoming) -> Result<(ExecRequest, RequestFrames), String> {
        let mut frames = RequestFrames {
            body,
            decoder: FrameDecoder::new(),
            done: false,
        };
        match frames.next().await? {
            Some((FrameKind::Spec, payload)) => {
                let req: ExecRequest =
                    serde_json::from_slice(&payload).map_err(|e| format!("bad exec spec: {e}"))?;
                Ok((req, frames))
            }
            Some((kind, _)) => Err(format!("expected a spec frame, got {kind:?}")),
            None => Err("empty exec request".to_string()),
        }
    }

    /// The next frame, or `None` at the end of the body.
    pub async fn next(&mut self) -> Result<Option<(FrameKind, Bytes)>, String> {
        loop {
            if let Some(f) = self.decoder.next_frame().map_err(|e| e.to_string())? {
                return Ok(Some((f.kind, Bytes::from(f.payload))));
            }
            if self.done {
                self.decoder.finish().map_err(|e| e.to_string())?;
                return Ok(None);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(&data);
                    }
                }
                Some(Err(e)) => return Err(format!("reading the request: {e}")),
                None => self.done = true,
            }
        }
    }
}
