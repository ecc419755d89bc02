//! Streaming a try's log lines to the server in batches.
//!
//! Two pumps read the child's stdout and stderr line by line; the worker adds `system` lines of its own ("started
//! pid 42", "exit code 1"). All go through one bounded channel to a shipper task that posts a batch every
//! [`FLUSH_EVERY`], or sooner when the batch is large. The channel being bounded is deliberate: when the server is
//! slow, the pumps stop reading, the pipe fills and the task blocks on write, as it would on a slow terminal, instead
//! of the worker buffering without limit.
//!
//! Logs are kept while the server cannot take them (it is down, or its database is): a batch whose post failed for
//! such a reason is sent again with the next one, after a pause with backoff and jitter, and what is still held
//! when the task ends travels with the report. Past [`MAX_HELD_BYTES`] held, new lines are dropped with a
//! warning, and a batch the server refuses for another reason is dropped too: the try goes on. The outcome is what
//! must not be lost (see the report in `task.rs`).
//!
//! Secrets the lease names ([`LeasedTask::mask`]) never leave the worker: the pumps mask each pipe as one stream
//! (a secret written in two pieces, or cut where a long line is cut, is still caught), and the worker's own lines
//! are masked whole.
//!
//! [`LeasedTask::mask`]: sluice_core::protocol::LeasedTask::mask

use std::sync::Arc;

use chrono::Utc;
use sluice_core::masking::{Masker, StreamMasker};
use sluice_core::protocol::{LogBatch, LogLine, LogStream};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::{Backoff, Client, ClientError};
use crate::output::{MAX_OUTPUT_BYTES, Markers};

/// How long a line may wait before it is sent. Half a second still shows a running task's lines as they come, and
/// a task that ends sooner sends them once, with its report, instead of in a request (and a transaction) of their own.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// A batch is sent at once when it has this many lines...
const MAX_BATCH_LINES: usize = 1000;
/// ...or this many bytes.
const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Lines waiting in the channel before the pumps stop reading.
const CHANNEL_LINES: usize = 4096;
/// Longer lines are cut into pieces. Above the output cap by more than the longest `::output name=<key>::` prefix,
/// so that a too-big output line is still recognised as one (and fails the try) rather than cut into a
/// small-looking piece.
pub const MAX_LINE_BYTES: usize = MAX_OUTPUT_BYTES + 2048;

/// Where log lines are written; cheap to clone.
#[derive(Debug, Clone)]
pub struct LogSender {
    tx: mpsc::Sender<LogLine>,
    /// The try's secrets.
    masker: Arc<Masker>,
}

impl LogSender {
    /// A line written by the worker itself. Never blocks: when the channel is full (the server is slow), the line
    /// goes to the worker's own log only, so that logging never delays a kill.
    pub fn system(&self, line: impl Into<String>) {
        let line = self.masker.mask(&line.into()).into_owned();
        tracing::info!("{line}");
        if self.tx.try_send(log_line(LogStream::System, line)).is_err() {
            tracing::warn!("log buffer full or closed: the line above is not sent to the server");
        }
    }

    /// A line of the task's output; waits when the channel is full.
    async fn send(&self, stream: LogStream, line: String) -> bool {
        self.tx.send(log_line(stream, line)).await.is_ok()
    }
}

/// A sender whose lines land in the returned receiver, for tests that look at what a try logs.
#[cfg(test)]
pub fn test_channel(masker: Masker) -> (LogSender, mpsc::Receiver<LogLine>) {
    let (tx, rx) = mpsc::channel(CHANNEL_LINES);
    (LogSender { tx, masker: Arc::new(masker) }, rx)
}

fn log_line(stream: LogStream, line: String) -> LogLine {
    LogLine { timestamp: Utc::now(), stream, line }
}

/// The task that posts log batches of one try.
#[derive(Debug)]
pub struct LogShipper {
    sender: LogSender,
    task: JoinHandle<Vec<LogLine>>,
}

impl LogShipper {
    /// Ships the lines of try `lease_id`, with `masker`'s secrets masked, and of the task's own output at most
    /// `max_bytes`.
    pub fn start(client: Client, ti_id: Uuid, lease_id: Uuid, masker: Masker, max_bytes: u64) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_LINES);
        let task = tokio::spawn(ship(client, ti_id, lease_id, rx, max_bytes));
        LogShipper { sender: LogSender { tx, masker: Arc::new(masker) }, task }
    }

    pub fn sender(&self) -> LogSender {
        self.sender.clone()
    }

    /// Stops and returns the lines not sent yet, which travel with the report. The other senders must be
    /// dropped first, or this waits for them.
    pub async fn finish(self) -> Vec<LogLine> {
        drop(self.sender);
        self.task.await.unwrap_or_else(|e| {
            tracing::error!("the log shipper failed: {e}");
            Vec::new()
        })
    }
}

/// Lines gathered for the next post.
#[derive(Debug, Default)]
struct Batch {
    lines: Vec<LogLine>,
    bytes: usize,
}

impl Batch {
    /// Adds a line; true when the batch should be sent now.
    fn push(&mut self, line: LogLine) -> bool {
        self.bytes += line.line.len();
        self.lines.push(line);
        self.lines.len() >= MAX_BATCH_LINES || self.bytes >= MAX_BATCH_BYTES
    }

    fn take(&mut self) -> Vec<LogLine> {
        self.bytes = 0;
        std::mem::take(&mut self.lines)
    }
}

async fn ship(
    client: Client,
    ti_id: Uuid,
    lease_id: Uuid,
    mut rx: mpsc::Receiver<LogLine>,
    max_bytes: u64,
) -> Vec<LogLine> {
    let mut batch = Batch::default();
    let mut limit = Limit { left: max_bytes, cut: 0, max_bytes };
    // The first post waits a whole period too (a plain `interval` ticks at once), so that the lines of a short
    // task, "started pid" included, all travel with its report.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut poster = Poster::new(client, ti_id, lease_id);
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => if let Some(line) = limit.admit(line) && batch.push(line) { poster.post(batch.take()).await },
                None => {
                    if let Some(note) = limit.summary() {
                        batch.push(note);
                    }
                    return poster.tail(batch.take());
                }
            },
            _ = tick.tick() => poster.post(batch.take()).await,
        }
    }
}

/// The log size limit of one try: the task's own lines count against it; past it they are dropped (the pumps still
/// read them, so the task never blocks on a full pipe), with a note where the cut starts and one at the end saying
/// how much went. The worker's own lines always pass.
struct Limit {
    left: u64,
    cut: u64,
    max_bytes: u64,
}

impl Limit {
    fn admit(&mut self, line: LogLine) -> Option<LogLine> {
        if line.stream == LogStream::System {
            return Some(line);
        }
        let size = line.line.len() as u64 + 1;
        if size <= self.left {
            self.left -= size;
            return Some(line);
        }
        self.left = 0;
        self.cut += size;
        (self.cut == size).then(|| {
            log_line(
                LogStream::System,
                format!(
                    "the log is cut here: the try wrote more than {} bytes, the most a try's log keeps",
                    self.max_bytes
                ),
            )
        })
    }

    fn summary(&self) -> Option<LogLine> {
        (self.cut > 0)
            .then(|| log_line(LogStream::System, format!("{} bytes of output were not kept in the log", self.cut)))
    }
}

struct Poster {
    client: Client,
    ti_id: Uuid,
    lease_id: Uuid,
    /// After a 409 the server refuses every batch; stop trying (the heartbeat kills the task).
    lease_lost: bool,
    /// Lines whose post failed for a reason that passes (server or database away), sent again first.
    held: Vec<LogLine>,
    /// No post before this, after a failed one.
    retry_at: Instant,
    retries: Backoff,
}

impl Poster {
    fn new(client: Client, ti_id: Uuid, lease_id: Uuid) -> Self {
        Poster {
            client,
            ti_id,
            lease_id,
            lease_lost: false,
            held: Vec::new(),
            retry_at: Instant::now(),
            retries: Backoff::new(),
        }
    }

    async fn post(&mut self, lines: Vec<LogLine>) {
        if self.lease_lost {
            return;
        }
        if held_bytes(&self.held) + held_bytes(&lines) > MAX_HELD_BYTES {
            tracing::warn!("dropping {} log lines: {MAX_HELD_BYTES} bytes already wait for the server", lines.len());
        } else {
            self.held.extend(lines);
        }
        if self.held.is_empty() || Instant::now() < self.retry_at {
            return;
        }
        let batch = LogBatch { lease_id: self.lease_id, lines: std::mem::take(&mut self.held) };
        match self.client.logs(self.ti_id, &batch).await {
            Ok(()) => self.retries.reset(),
            Err(ClientError::Conflict) => {
                tracing::warn!("the server refused the logs: the lease is lost");
                self.lease_lost = true;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!("keeping {} log lines to send again: {e}", batch.lines.len());
                self.held = batch.lines;
                self.retry_at = Instant::now() + self.retries.next_delay();
            }
            Err(e) => tracing::warn!("dropping {} log lines: {e}", batch.lines.len()),
        }
    }

    /// What is left to send with the report: the lines held after failed posts, then `rest`.
    fn tail(mut self, rest: Vec<LogLine>) -> Vec<LogLine> {
        if self.lease_lost {
            return Vec::new();
        }
        self.held.extend(rest);
        self.held
    }
}

/// Lines held while the server cannot take them are kept up to this size (they may end in the report, which must
/// stay well under the server's request limit); past it new lines are dropped.
const MAX_HELD_BYTES: usize = 4 * MAX_BATCH_BYTES;

fn held_bytes(lines: &[LogLine]) -> usize {
    lines.iter().map(|line| line.line.len()).sum()
}

/// Reads `reader` line by line into `sink` until EOF, masking the try's secrets. Returns the last output line of each
/// key (stdout only), masked too.
///
/// Invalid UTF-8 is replaced rather than fatal (tasks print what they print), and a line longer than
/// [`MAX_LINE_BYTES`] is cut into pieces so that a task printing without newlines cannot exhaust memory.
pub async fn pump_lines(reader: impl AsyncRead + Unpin, stream: LogStream, sink: LogSender) -> Markers {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let mut lines = Lines { masking: StreamMasker::new(Masker::clone(&sink.masker)), text: String::new() };
    let mut markers = Markers::default();
    loop {
        buf.clear();
        let limit = MAX_LINE_BYTES as u64;
        let read = (&mut reader).take(limit).read_until(b'\n', &mut buf).await;
        let ended = match read {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(?stream, "reading the task's output failed: {e}");
                true
            }
        };
        let complete = if ended { lines.finish() } else { lines.push(&String::from_utf8_lossy(&buf)) };
        for line in complete {
            if stream == LogStream::Stdout {
                markers.push(&line);
            }
            if !sink.send(stream, line).await {
                return markers;
            }
        }
        if ended {
            return markers;
        }
    }
}

/// A pipe's text, masked as one stream and cut into lines.
struct Lines {
    masking: StreamMasker,
    /// Masked text of the line being read.
    text: String,
}

impl Lines {
    /// The lines that `piece` completes: those ended by a newline, and a piece too long to wait for its end.
    fn push(&mut self, piece: &str) -> Vec<String> {
        self.text.push_str(&self.masking.push(piece));
        self.complete_lines()
    }

    fn complete_lines(&mut self) -> Vec<String> {
        let mut complete = Vec::new();
        while let Some(end) = self.text.find('\n') {
            let rest = self.text.split_off(end + 1);
            complete.push(std::mem::replace(&mut self.text, rest));
        }
        if self.text.len() >= MAX_LINE_BYTES {
            complete.push(std::mem::take(&mut self.text));
        }
        complete.into_iter().map(|line| line.trim_end_matches(['\n', '\r']).to_owned()).collect()
    }

    /// The last lines, once the pipe is closed.
    fn finish(&mut self) -> Vec<String> {
        self.text.push_str(&self.masking.finish());
        let mut complete = self.complete_lines();
        if !self.text.is_empty() {
            complete.push(std::mem::take(&mut self.text));
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut mpsc::Receiver<LogLine>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok()).map(|l| l.line).collect()
    }

    #[tokio::test]
    async fn a_try_shorter_than_the_flush_period_sends_its_lines_with_the_report() {
        // No server listens here: a batch posted on the way would be dropped, and missing from what is returned.
        let client = Client::new("http://127.0.0.1:9", "token", reqwest::Client::builder()).expect("client");
        let shipper = LogShipper::start(client, Uuid::now_v7(), Uuid::now_v7(), Masker::default(), 1 << 20);
        shipper.sender().system("started pid 42");
        tokio::time::sleep(FLUSH_EVERY / 2).await;
        shipper.sender().system("exit code 0");
        let lines: Vec<String> = shipper.finish().await.into_iter().map(|l| l.line).collect();
        assert_eq!(lines, ["started pid 42", "exit code 0"]);
    }

    #[tokio::test]
    async fn lines_are_split_and_the_last_output_marker_is_kept() {
        let (sink, mut rx) = test_channel(Masker::default());
        let text = b"one\r\n::output::{\"a\": 1}\nbad \xff byte\n::output::2\nlast without newline";
        let markers = pump_lines(&text[..], LogStream::Stdout, sink).await;
        assert_eq!(markers.get(sluice_core::xcom::RETURN_VALUE), Some("2"));
        let lines = drain(&mut rx);
        assert_eq!(lines, ["one", "::output::{\"a\": 1}", "bad \u{fffd} byte", "::output::2", "last without newline"]);
    }

    #[tokio::test]
    async fn a_huge_line_is_cut_into_pieces() {
        let (sink, mut rx) = test_channel(Masker::default());
        let text = format!("{}\nnext\n", "x".repeat(MAX_LINE_BYTES * 2 + 5));
        pump_lines(text.as_bytes(), LogStream::Stderr, sink).await;
        let lengths: Vec<usize> = drain(&mut rx).iter().map(String::len).collect();
        assert_eq!(lengths, [MAX_LINE_BYTES, MAX_LINE_BYTES, 5, 4]);
    }

    #[tokio::test]
    async fn system_lines_never_block() {
        let (tx, mut rx) = mpsc::channel(1);
        let sink = LogSender { tx, masker: Arc::default() };
        sink.system("started pid 1");
        sink.system("dropped: the channel is full");
        assert_eq!(drain(&mut rx), ["started pid 1"]);
    }

    /// A reader that gives its pieces one read at a time, as a pipe does when the task pauses between writes.
    struct Pieces(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(piece) = self.0.pop_front() {
                buf.put_slice(&piece);
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn pieces(parts: &[&[u8]]) -> Pieces {
        Pieces(parts.iter().map(|p| p.to_vec()).collect())
    }

    #[tokio::test]
    async fn secrets_are_masked_also_when_written_in_pieces() {
        let masker = Masker::new(["hunter2-secret".to_owned(), "line\nspanning-secret".to_owned()]);
        let (sink, mut rx) = test_channel(masker);
        let reader = pieces(&[
            b"key=hunter2",
            b"-secret and hunter2-secret\n",
            b"a line\nspanning-",
            b"secret\n",
            b"end hunter2-sec",
        ]);
        let markers = pump_lines(reader, LogStream::Stdout, sink.clone()).await;
        assert_eq!(markers, Markers::default());
        sink.system("could not start \"hunter2-secret\"");
        assert_eq!(drain(&mut rx), ["key=*** and ***", "a ***", "end hunter2-sec", "could not start \"***\""]);
    }

    #[tokio::test]
    async fn a_secret_across_the_cut_of_a_huge_line_is_masked() {
        let (sink, mut rx) = test_channel(Masker::new(["hunter2-secret".to_owned()]));
        let text =
            format!("{}hunter2-secret tail\n::output::{{\"k\": \"hunter2-secret\"}}\n", "x".repeat(MAX_LINE_BYTES - 4));
        let markers = pump_lines(text.as_bytes(), LogStream::Stdout, sink).await;
        assert_eq!(markers.get(sluice_core::xcom::RETURN_VALUE), Some("{\"k\": \"***\"}"));
        let lines = drain(&mut rx);
        assert!(lines.iter().all(|l| !l.contains("hunter2")), "a piece of the secret is shown");
        assert_eq!(lines.concat(), format!("{}*** tail::output::{{\"k\": \"***\"}}", "x".repeat(MAX_LINE_BYTES - 4)));
    }

    #[test]
    fn a_batch_is_full_by_lines_or_by_bytes() {
        let mut batch = Batch::default();
        let full = (0..MAX_BATCH_LINES).map(|_| batch.push(log_line(LogStream::Stdout, "x".into())));
        assert_eq!(full.filter(|full| *full).count(), 1);
        assert_eq!(batch.take().len(), MAX_BATCH_LINES);
        assert!(batch.lines.is_empty() && batch.bytes == 0);
        assert!(!batch.push(log_line(LogStream::Stdout, "small".into())));
        assert!(batch.push(log_line(LogStream::Stdout, "y".repeat(MAX_BATCH_BYTES))));
    }
}
