//! The request channel between a process pod and its child: length-delimited
//! frames with a request id over a socket pair, the child's end on fd 3.
//! The protocol is documented on [`ChannelSpec`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::rc::Rc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::channel::oneshot;
use futures::future::{self, LocalBoxFuture};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time;

use crate::error::{RequestError, RuntimeError};

use super::probe::InvalidSpec;

/// The descriptor the child finds its end of the channel on.
pub(crate) const CHILD_FD: i32 = 3;

/// The variable that tells the child so.
pub(crate) const FD_VAR: &str = "POD_CHANNEL_FD";

/// Bytes of a frame after its length field and before its payload: the id
/// and the kind.
const ID_AND_KIND: usize = 9;

/// Frame kinds.
const REQUEST: u8 = 0;
const ANSWER: u8 = 0;
const ERROR: u8 = 1;

/// How much the writer gathers into one write.
const BATCH: usize = 64 * 1024;

/// The request channel of a process runtime: how requests
/// ([`ProcessRequest::Call`](crate::ProcessRequest::Call)) reach the child
/// and answers come back, many in flight at once.
///
/// # Transport
///
/// The pod creates a connected pair of unix stream sockets and gives the
/// child its end as **file descriptor 3**, named by the variable
/// `POD_CHANNEL_FD=3`; stdin stays empty, and stdout and stderr stay the
/// child's log (and the stdout probe's). A socket pair rather than the
/// child's stdin and stdout, because stdout is where programs and their
/// libraries print, and one stray line would corrupt the framing; rather
/// than a named socket, because an inherited descriptor has no path that
/// another user could squat or connect to, nothing to clean up, and it
/// survives a child that drops its privileges.
///
/// # Frames
///
/// Both directions carry the same frame; integers are big-endian:
///
/// ```text
/// +-----------+-----------+--------+----------------------+
/// | length u32| id u64    | kind u8| payload              |
/// +-----------+-----------+--------+----------------------+
///              <------------ length bytes --------------->
/// ```
///
/// - `length` counts the bytes after itself: 9 plus the payload. It is at
///   most [`max_frame`](ChannelSpec::max_frame) (4 MiB by default).
/// - From the pod: kind `0`, a request; `id` is 1 for the first request of
///   a child and one more for each next one.
/// - From the child: kind `0`, the answer to request `id`, its payload the
///   response; kind `1`, an error answer, its payload a UTF-8 message (the
///   caller gets [`RequestError::Runtime`] with it, and the child keeps
///   serving).
/// - The child answers every request once, in any order, and may work on
///   many at a time. It writes nothing before the first request (a frame
///   that answers no request sent breaks the protocol).
/// - The child should make fd 3 close-on-exec once it has it, so that the
///   programs it starts do not hold the channel open.
///
/// # Errors and limits
///
/// - A request whose payload makes a frame over `max_frame` is refused to
///   its caller with [`RequestError::TooLarge`], not sent.
/// - At most [`max_in_flight`](ChannelSpec::max_in_flight) requests (1,024
///   by default) are in flight: sent or waiting to be sent, not yet
///   answered. Past that a request gets [`RequestError::Busy`] at once,
///   without being sent, so a child that stops reading costs bounded
///   memory (at most `max_in_flight` requests' frames) and a deployment
///   tries another replica.
/// - A request not answered within [`timeout`](ChannelSpec::timeout) (60 s
///   by default; `None`, written `timeout = 0` in a config, waits for ever)
///   gets [`RequestError::TimedOut`]; an answer that comes later is
///   dropped.
/// - A frame from the child shorter than 9 bytes, longer than `max_frame`,
///   of another kind, or answering an id never sent fails the runtime at
///   once, with a cause that says which. An answer to a request already
///   answered or timed out is dropped, with a warning.
/// - Answers the child wrote before it ended reach their callers; the
///   requests still in flight then are answered [`RequestError::Exited`]
///   with the child's exit (code or signal, and its last output).
///
/// # End of stream
///
/// The child closing its end while it runs fails the runtime ("closed its
/// end of the request channel"), unless the child is exiting, whose exit is
/// then the cause. On a graceful stop the pod first waits for the answers to
/// the requests in flight, then shuts its end down, and only then sends the
/// stop signal: when the signal comes, the child's channel is already at its
/// end of file, and the child may take either as the request to stop. If
/// the stop deadline passes first, the requests still in flight are
/// answered [`RequestError::Exited`] without a cause, and the child is
/// killed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use runtime_actor::{ChannelSpec, ProcessSpec};
///
/// let spec = ProcessSpec::new("my-executor").channel(
///     ChannelSpec::default()
///         .max_in_flight(64)
///         .timeout(Some(Duration::from_secs(5))),
/// );
/// assert!(spec.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    max_frame: usize,
    max_in_flight: usize,
    timeout: Option<Duration>,
}

impl Default for ChannelSpec {
    fn default() -> Self {
        ChannelSpec {
            max_frame: ChannelSpec::DEFAULT_MAX_FRAME,
            max_in_flight: ChannelSpec::DEFAULT_MAX_IN_FLIGHT,
            timeout: Some(ChannelSpec::DEFAULT_TIMEOUT),
        }
    }
}

impl ChannelSpec {
    /// The default largest frame: 4 MiB, as gRPC's default message limit.
    pub const DEFAULT_MAX_FRAME: usize = 4 * 1024 * 1024;
    /// The default number of requests in flight.
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
    /// The default time a request may take.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    /// The largest `max_frame` accepted: 1 GiB.
    pub const MAX_FRAME_LIMIT: usize = 1 << 30;
    /// The largest `max_in_flight` accepted.
    pub const MAX_IN_FLIGHT_LIMIT: usize = 1 << 20;

    /// The largest `length` field of a frame, either way (9 bytes of id
    /// and kind plus the payload).
    #[must_use]
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// How many requests may be in flight at once.
    #[must_use]
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests;
        self
    }

    /// How long a request may wait for its answer; `None` for ever.
    #[must_use]
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest payload a request may carry.
    pub fn max_payload(&self) -> usize {
        self.max_frame.saturating_sub(ID_AND_KIND)
    }

    pub(crate) fn validate(&self) -> Result<(), InvalidSpec> {
        let invalid = |field: &'static str, reason: String| InvalidSpec { field, reason };
        if !(ID_AND_KIND + 1..=ChannelSpec::MAX_FRAME_LIMIT).contains(&self.max_frame) {
            return Err(invalid(
                "channel.max_frame",
                format!(
                    "must be from {} to {} bytes, got {}",
                    ID_AND_KIND + 1,
                    ChannelSpec::MAX_FRAME_LIMIT,
                    self.max_frame
                ),
            ));
        }
        if !(1..=ChannelSpec::MAX_IN_FLIGHT_LIMIT).contains(&self.max_in_flight) {
            return Err(invalid(
                "channel.max_in_flight",
                format!(
                    "must be from 1 to {}, got {}",
                    ChannelSpec::MAX_IN_FLIGHT_LIMIT,
                    self.max_in_flight
                ),
            ));
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(invalid(
                "channel.timeout",
                "must be positive (or none, to wait for ever)".into(),
            ));
        }
        Ok(())
    }
}

/// Why the channel stopped working.
#[derive(Debug)]
pub(crate) struct Broken {
    pub(crate) reason: String,
    /// The child broke the protocol (rather than closing or dying).
    pub(crate) protocol: bool,
}

impl Broken {
    fn closed(reason: impl Into<String>) -> Self {
        Broken {
            reason: reason.into(),
            protocol: false,
        }
    }

    fn protocol(reason: impl Into<String>) -> Self {
        Broken {
            reason: format!(
                "the child broke the request channel's protocol: {}",
                reason.into()
            ),
            protocol: true,
        }
    }
}

type Reply = oneshot::Sender<Result<Bytes, RequestError>>;

/// What the pod's side of the channel and its two tasks share.
#[derive(Default)]
struct Shared {
    pending: RefCell<HashMap<u64, Reply>>,
    next_id: Cell<u64>,
    /// Answers read but not yet given to their callers: their futures have
    /// not been polled since.
    unforwarded: Cell<usize>,
    /// The reader has stopped: end of file, an error, or a broken frame.
    read_all: Cell<bool>,
    /// Woken when `unforwarded` or `read_all` change.
    changed: Notify,
    /// Answers dropped: late (timed out) or repeated.
    dropped: Cell<u64>,
    broken: RefCell<Option<oneshot::Sender<Broken>>>,
}

impl Shared {
    /// Whatever the child wrote has been read and handed to its caller.
    fn drained(&self) -> bool {
        self.read_all.get() && self.unforwarded.get() == 0
    }

    fn break_with(&self, broken: Broken) {
        if let Some(tx) = self.broken.borrow_mut().take() {
            let _ = tx.send(broken);
        }
    }
}

/// The pod's end of an open channel.
pub(crate) struct Channel {
    spec: ChannelSpec,
    shared: Rc<Shared>,
    /// Another descriptor of the pod's end, to shut it down at once
    /// whatever the writer is doing.
    control: StdUnixStream,
    frames: RefCell<Option<mpsc::Sender<(u64, Bytes)>>>,
    tasks: Vec<JoinHandle<()>>,
}

/// A socket pair made before the spawn: the pod's end, and the child's,
/// which the parent closes once the child has it.
pub(crate) struct Pair {
    pub(crate) ours: StdUnixStream,
    pub(crate) child: OwnedFd,
}

impl Pair {
    pub(crate) fn new() -> io::Result<Pair> {
        // Both ends close-on-exec: the child's end reaches fd 3 of the
        // child alone, by dup2 between clone and exec.
        let (ours, child) = StdUnixStream::pair()?;
        ours.set_nonblocking(true)?;
        Ok(Pair {
            ours,
            child: child.into(),
        })
    }
}

impl Channel {
    /// Starts the reader and writer on the pod's end; the receiver hears
    /// once why the channel broke, if it does.
    pub(crate) fn open(
        spec: ChannelSpec,
        ours: StdUnixStream,
    ) -> io::Result<(Channel, oneshot::Receiver<Broken>)> {
        let control = ours.try_clone()?;
        let stream = UnixStream::from_std(ours)?;
        let (read, write) = stream.into_split();
        let (broken_tx, broken) = oneshot::channel();
        let shared = Rc::new(Shared {
            next_id: Cell::new(1),
            broken: RefCell::new(Some(broken_tx)),
            ..Shared::default()
        });
        let (frames, frames_rx) = mpsc::channel(spec.max_in_flight);
        let reader = {
            let shared = Rc::clone(&shared);
            let max_frame = spec.max_frame;
            tokio::task::spawn_local(async move {
                let broken = read_answers(read, &shared, max_frame).await;
                shared.read_all.set(true);
                shared.changed.notify_waiters();
                shared.break_with(broken);
            })
        };
        let writer = {
            let shared = Rc::clone(&shared);
            tokio::task::spawn_local(async move {
                if let Err(broken) = write_requests(write, frames_rx, &shared).await {
                    shared.break_with(broken);
                }
            })
        };
        Ok((
            Channel {
                spec,
                shared,
                control,
                frames: RefCell::new(Some(frames)),
                tasks: vec![reader, writer],
            },
            broken,
        ))
    }

    /// Sends `payload` as a request; the future answers it.
    pub(crate) fn call(
        &self,
        payload: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, RequestError>> {
        let refuse =
            |e: RequestError| -> LocalBoxFuture<'static, _> { Box::pin(future::ready(Err(e))) };
        if payload.len() > self.spec.max_payload() {
            return refuse(RequestError::TooLarge {
                size: payload.len(),
                limit: self.spec.max_payload(),
            });
        }
        let limit = self.spec.max_in_flight;
        if self.shared.pending.borrow().len() >= limit {
            return refuse(RequestError::Busy { limit });
        }
        let frames = self.frames.borrow();
        let Some(frames) = frames.as_ref() else {
            return refuse(RequestError::Stopping);
        };
        let id = self.shared.next_id.get();
        let (reply, answer) = oneshot::channel();
        self.shared.pending.borrow_mut().insert(id, reply);
        match frames.try_send((id, payload)) {
            Ok(()) => self.shared.next_id.set(id + 1),
            Err(e) => {
                self.shared.pending.borrow_mut().remove(&id);
                return refuse(match e {
                    // Frames of timed-out requests still wait for a
                    // writer that the child blocks.
                    mpsc::error::TrySendError::Full(_) => RequestError::Busy { limit },
                    mpsc::error::TrySendError::Closed(_) => RequestError::Stopping,
                });
            }
        }
        let timeout = self.spec.timeout;
        let shared = Rc::clone(&self.shared);
        Box::pin(async move {
            let answered = match timeout {
                None => answer.await,
                Some(after) => match time::timeout(after, answer).await {
                    Ok(answered) => answered,
                    Err(_) => {
                        shared.pending.borrow_mut().remove(&id);
                        return Err(RequestError::TimedOut { after });
                    }
                },
            };
            // Given to the caller as this future returns, in the same poll.
            if answered.is_ok() {
                shared.unforwarded.set(shared.unforwarded.get() - 1);
                if shared.drained() {
                    shared.changed.notify_waiters();
                }
            }
            // The reply is dropped only with the runtime, whose end then
            // answers the caller with its cause.
            answered.unwrap_or(Err(RequestError::Exited { cause: None }))
        })
    }

    /// Stops sending and shuts the pod's end down at once: the child reads
    /// end of file. Called once every request was answered or timed out, so
    /// the frames still queued (or half written, if the child stopped
    /// reading) are of requests nobody waits for any more.
    pub(crate) fn close(&self) {
        self.frames.borrow_mut().take();
        let _ = self.control.shutdown(std::net::Shutdown::Write);
    }

    /// A handle that waits until every answer the child wrote has been read
    /// and given to its caller.
    pub(crate) fn drain(&self) -> Drain {
        Drain(Rc::clone(&self.shared))
    }
}

/// Waits until the child's answers are all read and forwarded; see
/// [`Channel::drain`].
pub(crate) struct Drain(Rc<Shared>);

impl Drain {
    /// Resolves once the reader has stopped (the child's end is closed, by
    /// its exit say) and each answer it read has reached its caller.
    pub(crate) async fn drained(&self) {
        loop {
            let changed = self.0.changed.notified();
            if self.0.drained() {
                return;
            }
            changed.await;
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Reads answers and gives each to its request, until the channel ends or
/// the child breaks the protocol.
async fn read_answers(read: OwnedReadHalf, shared: &Shared, max_frame: usize) -> Broken {
    let mut reader = BufReader::with_capacity(BATCH, read);
    loop {
        let mut length = [0; 4];
        match reader.read(&mut length[..1]).await {
            Ok(0) => return Broken::closed("the child closed its end of the request channel"),
            Ok(_) => {}
            Err(e) => return Broken::closed(format!("cannot read the request channel: {e}")),
        }
        if let Err(e) = reader.read_exact(&mut length[1..]).await {
            return ended_inside(&e);
        }
        let length = u32::from_be_bytes(length) as usize;
        if length < ID_AND_KIND {
            return Broken::protocol(format!(
                "a frame of {length} bytes, fewer than the 9 of its id and kind"
            ));
        }
        if length > max_frame {
            return Broken::protocol(format!(
                "a frame of {length} bytes, over runtime.channel.max_frame ({max_frame})"
            ));
        }
        let mut body = BytesMut::zeroed(length);
        if let Err(e) = reader.read_exact(&mut body).await {
            return ended_inside(&e);
        }
        let mut body = body.freeze();
        let id = u64::from_be_bytes(body[..8].try_into().unwrap_or_default());
        let kind = body[8];
        let payload = body.split_off(ID_AND_KIND);
        let answer = match kind {
            ANSWER => Ok(payload),
            ERROR => Err(RequestError::Runtime(RuntimeError::new(
                String::from_utf8_lossy(&payload).into_owned(),
            ))),
            other => {
                return Broken::protocol(format!(
                    "a frame of kind {other} (id {id}); answers are of kind 0 or 1"
                ))
            }
        };
        // A frame from the buffer costs no read, so tokio's budget would not
        // see it: a child that floods answers must not hold the arbiter.
        tokio::task::consume_budget().await;
        let reply = shared.pending.borrow_mut().remove(&id);
        match reply {
            Some(reply) => {
                if reply.send(answer).is_ok() {
                    shared.unforwarded.set(shared.unforwarded.get() + 1);
                }
            }
            None if id == 0 || id >= shared.next_id.get() => {
                return Broken::protocol(format!("an answer to request {id}, which was never sent"))
            }
            None => {
                let dropped = shared.dropped.get() + 1;
                shared.dropped.set(dropped);
                if dropped % 1000 == 1 {
                    tracing::warn!(
                        id,
                        dropped,
                        "dropped an answer to a request already answered or timed out"
                    );
                }
            }
        }
    }
}

fn ended_inside(e: &io::Error) -> Broken {
    Broken::closed(match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            "the child closed its end of the request channel inside a frame".to_owned()
        }
        _ => format!("cannot read the request channel: {e}"),
    })
}

/// Writes queued requests, several frames per write, until the pod closes
/// the channel; then shuts the pod's end down.
async fn write_requests(
    mut write: OwnedWriteHalf,
    mut frames: mpsc::Receiver<(u64, Bytes)>,
    shared: &Shared,
) -> Result<(), Broken> {
    let mut batch = BytesMut::with_capacity(BATCH);
    while let Some(frame) = frames.recv().await {
        push(&mut batch, frame, shared);
        while batch.len() < BATCH {
            match frames.try_recv() {
                Ok(frame) => push(&mut batch, frame, shared),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        if let Err(e) = write.write_all(&batch).await {
            return Err(Broken::closed(format!(
                "cannot write to the request channel: {e}"
            )));
        }
        batch.clear();
    }
    let _ = write.shutdown().await;
    Ok(())
}

/// Appends the frame of one request, unless it timed out while queued.
fn push(batch: &mut BytesMut, (id, payload): (u64, Bytes), shared: &Shared) {
    if !shared.pending.borrow().contains_key(&id) {
        return;
    }
    // The payload fits: `call` checked it against max_frame (≤ 1 GiB).
    batch.put_u32((ID_AND_KIND + payload.len()) as u32);
    batch.put_u64(id);
    batch.put_u8(REQUEST);
    batch.put_slice(&payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The child's side, by hand: reads one request frame.
    async fn read_request(child: &mut UnixStream) -> (u64, u8, Vec<u8>) {
        let length = child.read_u32().await.unwrap() as usize;
        let id = child.read_u64().await.unwrap();
        let kind = child.read_u8().await.unwrap();
        let mut payload = vec![0; length - ID_AND_KIND];
        child.read_exact(&mut payload).await.unwrap();
        (id, kind, payload)
    }

    async fn answer(child: &mut UnixStream, id: u64, kind: u8, payload: &[u8]) {
        let mut frame = Vec::new();
        frame.extend_from_slice(&((ID_AND_KIND + payload.len()) as u32).to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
        frame.push(kind);
        frame.extend_from_slice(payload);
        child.write_all(&frame).await.unwrap();
    }

    fn open(spec: ChannelSpec) -> (Channel, oneshot::Receiver<Broken>, UnixStream) {
        let pair = Pair::new().unwrap();
        let (channel, broken) = Channel::open(spec, pair.ours).unwrap();
        let child = StdUnixStream::from(pair.child);
        child.set_nonblocking(true).unwrap();
        (channel, broken, UnixStream::from_std(child).unwrap())
    }

    fn local(test: impl std::future::Future<Output = ()>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, test);
    }

    #[test]
    fn answers_out_of_order_reach_their_requests() {
        local(async {
            let (channel, _broken, mut child) = open(ChannelSpec::default().timeout(None));
            let first = channel.call(Bytes::from_static(b"one"));
            let second = channel.call(Bytes::from_static(b"two"));
            assert_eq!(
                read_request(&mut child).await,
                (1, REQUEST, b"one".to_vec())
            );
            assert_eq!(
                read_request(&mut child).await,
                (2, REQUEST, b"two".to_vec())
            );
            answer(&mut child, 2, ANSWER, b"TWO").await;
            answer(&mut child, 1, ERROR, b"no one").await;
            assert_eq!(second.await.unwrap(), Bytes::from_static(b"TWO"));
            match first.await {
                Err(RequestError::Runtime(e)) => assert_eq!(e.message(), "no one"),
                other => panic!("expected the error answer, got {other:?}"),
            }
        });
    }

    #[test]
    fn past_max_in_flight_requests_are_refused_busy_and_not_sent() {
        local(async {
            let (channel, _broken, mut child) =
                open(ChannelSpec::default().max_in_flight(2).timeout(None));
            let a = channel.call(Bytes::from_static(b"a"));
            let _b = channel.call(Bytes::from_static(b"b"));
            assert!(matches!(
                channel.call(Bytes::from_static(b"c")).await,
                Err(RequestError::Busy { limit: 2 })
            ));
            read_request(&mut child).await;
            read_request(&mut child).await;
            answer(&mut child, 1, ANSWER, b"").await;
            a.await.unwrap();
            // Room again, and the refused request used no id.
            let d = channel.call(Bytes::from_static(b"d"));
            assert_eq!(read_request(&mut child).await, (3, REQUEST, b"d".to_vec()));
            answer(&mut child, 3, ANSWER, b"D").await;
            assert_eq!(d.await.unwrap(), Bytes::from_static(b"D"));
        });
    }

    #[test]
    fn an_unanswered_request_times_out_and_its_late_answer_is_dropped() {
        local(async {
            let spec = ChannelSpec::default().timeout(Some(Duration::from_secs(5)));
            let (channel, mut broken, mut child) = open(spec);
            let slow = channel.call(Bytes::from_static(b"slow"));
            read_request(&mut child).await;
            assert!(matches!(
                slow.await,
                Err(RequestError::TimedOut { after }) if after == Duration::from_secs(5)
            ));
            answer(&mut child, 1, ANSWER, b"late").await;
            let next = channel.call(Bytes::from_static(b"next"));
            read_request(&mut child).await;
            answer(&mut child, 2, ANSWER, b"on time").await;
            assert_eq!(next.await.unwrap(), Bytes::from_static(b"on time"));
            assert_eq!(channel.shared.dropped.get(), 1);
            assert!(broken.try_recv().unwrap().is_none());
        });
    }

    #[test]
    fn an_oversized_request_is_refused_before_it_is_sent() {
        local(async {
            let (channel, _broken, mut child) =
                open(ChannelSpec::default().max_frame(16).timeout(None));
            match channel.call(Bytes::from(vec![0; 8])).await {
                Err(e @ RequestError::TooLarge { size: 8, limit: 7 }) => assert_eq!(
                    e.to_string(),
                    "request of 8 bytes not sent: the runtime takes at most 7"
                ),
                other => panic!("expected a refusal, got {other:?}"),
            }
            // The largest that fits is sent, as the first request.
            let _fits = channel.call(Bytes::from(vec![0; 7]));
            assert_eq!(read_request(&mut child).await, (1, REQUEST, vec![0; 7]));
        });
    }

    /// Writes raw bytes as the child and returns why the channel broke.
    async fn broken_by(bytes: &[u8], spec: ChannelSpec) -> Broken {
        let (channel, broken, mut child) = open(spec.timeout(None));
        let _pending = channel.call(Bytes::from_static(b"x"));
        child.write_all(bytes).await.unwrap();
        broken.await.unwrap()
    }

    #[test]
    fn frames_that_break_the_protocol_name_what_was_wrong() {
        local(async {
            let short = broken_by(&[0, 0, 0, 3, 1, 2, 3], ChannelSpec::default()).await;
            assert!(
                short.protocol && short.reason.contains("3 bytes, fewer than the 9"),
                "{short:?}"
            );

            let huge = broken_by(&u32::MAX.to_be_bytes(), ChannelSpec::default()).await;
            assert!(
                huge.protocol
                    && huge
                        .reason
                        .contains("4294967295 bytes, over runtime.channel.max_frame (4194304)"),
                "{huge:?}"
            );

            let mut kind = vec![0, 0, 0, 9];
            kind.extend_from_slice(&1u64.to_be_bytes());
            kind.push(7);
            let kind = broken_by(&kind, ChannelSpec::default()).await;
            assert!(
                kind.protocol && kind.reason.contains("kind 7 (id 1)"),
                "{kind:?}"
            );

            let mut unknown = vec![0, 0, 0, 9];
            unknown.extend_from_slice(&99u64.to_be_bytes());
            unknown.push(ANSWER);
            let unknown = broken_by(&unknown, ChannelSpec::default()).await;
            assert!(
                unknown.protocol && unknown.reason.contains("request 99, which was never sent"),
                "{unknown:?}"
            );
        });
    }

    #[test]
    fn a_child_that_closes_its_end_breaks_the_channel_without_blame() {
        local(async {
            let (channel, broken, mut child) = open(ChannelSpec::default().timeout(None));
            let _pending = channel.call(Bytes::from_static(b"x"));
            read_request(&mut child).await;
            child.write_all(&[0, 0, 0]).await.unwrap();
            drop(child);
            let broken = broken.await.unwrap();
            assert!(!broken.protocol);
            assert!(broken.reason.contains("inside a frame"), "{broken:?}");
        });
    }

    #[test]
    fn close_sends_end_of_file_at_once() {
        local(async {
            let (channel, _broken, mut child) = open(ChannelSpec::default().timeout(None));
            let _answered = channel.call(Bytes::from_static(b"read"));
            assert_eq!(read_request(&mut child).await.2, b"read");
            channel.close();
            let mut rest = Vec::new();
            child.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            assert!(matches!(
                channel.call(Bytes::from_static(b"after")).await,
                Err(RequestError::Stopping)
            ));
        });
    }

    #[test]
    fn invalid_specs_name_their_field() {
        let field = |spec: ChannelSpec| spec.validate().unwrap_err().field;
        assert_eq!(
            field(ChannelSpec::default().max_frame(9)),
            "channel.max_frame"
        );
        assert_eq!(
            field(ChannelSpec::default().max_frame(2 << 30)),
            "channel.max_frame"
        );
        assert_eq!(
            field(ChannelSpec::default().max_in_flight(0)),
            "channel.max_in_flight"
        );
        assert_eq!(
            field(ChannelSpec::default().timeout(Some(Duration::ZERO))),
            "channel.timeout"
        );
        assert!(ChannelSpec::default().timeout(None).validate().is_ok());
    }
}
