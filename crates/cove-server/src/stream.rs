//! The exec NDJSON stream (`API.md` §5.1): runtime events become frames,
//! stdout and stderr each pass through their own UTF-8 decoder (so a
//! character split across chunks is held back, not mangled), a heartbeat
//! goes out whenever the stream has been silent for the configured period,
//! and the stream ends with `exit_code`. Dropping the body (the client went
//! away) drops the runtime stream, which kills the command.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cove_api::exec::ExecStreamFrame;
use cove_api::ndjson::{encode_line, Utf8Decoder};
use cove_runtime::{ExecEvent, ExecEventStream};
use futures::{Stream, StreamExt};
use std::sync::Arc;

use crate::metrics::Metrics;

struct State {
    events: ExecEventStream,
    heartbeat: Duration,
    out: Utf8Decoder,
    err: Utf8Decoder,
    queue: VecDeque<ExecStreamFrame>,
    done: bool,
    started: Instant,
    metrics: Arc<Metrics>,
}

impl State {
    fn flush_decoders(&mut self) {
        let out = self.out.finish();
        if !out.is_empty() {
            self.queue.push_back(ExecStreamFrame {
                stdout: Some(out),
                ..Default::default()
            });
        }
        let err = self.err.finish();
        if !err.is_empty() {
            self.queue.push_back(ExecStreamFrame {
                stderr: Some(err),
                ..Default::default()
            });
        }
    }

    fn finish(&mut self, frame: ExecStreamFrame) {
        self.flush_decoders();
        self.queue.push_back(frame);
        self.done = true;
        self.metrics.observe_exec(self.started.elapsed());
    }

    fn on_event(&mut self, event: Option<ExecEvent>) {
        match event {
            Some(ExecEvent::Stdout(b)) => {
                let text = self.out.push(&b);
                if !text.is_empty() {
                    self.queue.push_back(ExecStreamFrame {
                        stdout: Some(text),
                        ..Default::default()
                    });
                }
            }
            Some(ExecEvent::Stderr(b)) => {
                let text = self.err.push(&b);
                if !text.is_empty() {
                    self.queue.push_back(ExecStreamFrame {
                        stderr: Some(text),
                        ..Default::default()
                    });
                }
            }
            Some(ExecEvent::Exit(code)) => self.finish(ExecStreamFrame {
                exit_code: Some(code),
                ..Default::default()
            }),
            // A start failure: the error and an exit code of -1 in one frame,
            // so both SDKs see the error and the stream still ends on an exit.
            Some(ExecEvent::Error(msg)) => self.finish(ExecStreamFrame {
                error: Some(msg),
                exit_code: Some(-1),
                ..Default::default()
            }),
            None => self.finish(ExecStreamFrame {
                error: Some("exec stream ended without an exit status".into()),
                exit_code: Some(-1),
                ..Default::default()
            }),
        }
    }
}

/// NDJSON lines for a running command.
pub fn exec_ndjson(
    events: ExecEventStream,
    heartbeat: Duration,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let state = State {
        events,
        heartbeat,
        out: Utf8Decoder::default(),
        err: Utf8Decoder::default(),
        queue: VecDeque::new(),
        done: false,
        started: Instant::now(),
        metrics,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(frame) = st.queue.pop_front() {
                // Serialising a struct of strings and ints cannot fail; if it
                // ever did, an error frame is still a valid line.
                let line = encode_line(&frame)
                    .unwrap_or_else(|_| "{\"error\":\"frame encoding failed\"}\n".to_owned());
                return Some((Ok(Bytes::from(line)), st));
            }
            if st.done {
                return None;
            }
            match tokio::time::timeout(st.heartbeat, st.events.next()).await {
                Ok(event) => st.on_event(event),
                Err(_) => st.queue.push_back(ExecStreamFrame::heartbeat()),
            }
        }
    })
}
