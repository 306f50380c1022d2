//! Typed requests for process pods: values encoded into the request
//! channel's bytes and answers decoded from them, by a [`Codec`] (JSON by
//! default).
//!
//! The channel itself carries bytes ([`ProcessRequest::Call`]); the child
//! reads and writes the encoding the codec names. [`TypedCall`] goes to one
//! pod, [`TypedRoute`] to a deployment of process replicas.
//!
//! # Examples
//!
//! ```no_run
//! use pod_actor::typed::TypedCall;
//! use pod_actor::Pod;
//! use runtime_actor::ProcessRuntime;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize)]
//! struct Embed {
//!     text: String,
//! }
//!
//! #[derive(Deserialize)]
//! struct Embedding {
//!     vector: Vec<f32>,
//! }
//!
//! # async fn example(pod: actix::Addr<Pod<ProcessRuntime>>) -> Result<(), Box<dyn std::error::Error>> {
//! let request = TypedCall::<Embedding>::new(&Embed { text: "hello".into() })?;
//! let answer: Embedding = pod.send(request).await??;
//! # Ok(()) }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use actix::{Context, Handler, Message};
/// The bytes a [`Codec`] encodes into (`bytes::Bytes`, re-exported so
/// that a codec needs no dependency of its own).
pub use bytes::Bytes;
use runtime_actor::{ProcessRequest, ProcessResponse, ProcessRuntime};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::deployment::{Deployment, RouteAnswer};
use crate::error::CallError;
use crate::pod::{CallAnswer, Pod};

/// How typed values become the channel's bytes and back.
pub trait Codec: 'static {
    /// Encodes a request.
    ///
    /// # Errors
    ///
    /// The value cannot be encoded (a map with keys that are not strings,
    /// in JSON).
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, CodecError>;

    /// Decodes an answer.
    ///
    /// # Errors
    ///
    /// The bytes are not an encoding of a `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError>;
}

/// JSON (`serde_json`), the default codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, CodecError> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| CodecError::new(Direction::Encode, "json", e))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError::new(Direction::Decode, "json", e))
    }
}

/// Which way a [`CodecError`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Encoding the request: it was not sent.
    Encode,
    /// Decoding the child's answer: the child did answer.
    Decode,
}

/// A request that could not be encoded, or an answer that could not be
/// decoded.
#[derive(Debug, Clone)]
pub struct CodecError {
    direction: Direction,
    codec: &'static str,
    source: Arc<dyn StdError + Send + Sync>,
}

impl CodecError {
    /// An error of `codec` (its name, for the message) going `direction`,
    /// caused by `source`.
    pub fn new(
        direction: Direction,
        codec: &'static str,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        CodecError {
            direction,
            codec,
            source: Arc::new(source),
        }
    }

    /// An error of `codec` going `direction`, described by `message` (for a
    /// codec whose own failures are not error values).
    pub fn msg(direction: Direction, codec: &'static str, message: impl Into<String>) -> Self {
        CodecError::new(direction, codec, Described(message.into()))
    }

    /// Whether the request could not be encoded or the answer decoded.
    pub fn direction(&self) -> Direction {
        self.direction
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.direction {
            Direction::Encode => write!(f, "cannot encode as {}", self.codec),
            Direction::Decode => write!(f, "cannot decode as {}", self.codec),
        }
    }
}

/// The source of a [`CodecError::msg`].
#[derive(Debug)]
struct Described(String);

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Described {}

impl StdError for CodecError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

impl From<CodecError> for CallError {
    fn from(e: CodecError) -> Self {
        CallError::Codec(e)
    }
}

/// A request encoded by `C`, whose answer decodes as `Resp`: what
/// [`TypedCall`] and [`TypedRoute`] carry.
struct Encoded<Resp, C> {
    payload: Bytes,
    _answer: PhantomData<fn() -> (Resp, C)>,
}

impl<Resp, C: Codec> Encoded<Resp, C> {
    fn new<Req: Serialize + ?Sized>(request: &Req) -> Result<Self, CodecError> {
        Ok(Encoded {
            payload: C::encode(request)?,
            _answer: PhantomData,
        })
    }
}

impl<Resp, C> Encoded<Resp, C> {
    fn describe(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("bytes", &self.payload.len())
            .field("answer", &std::any::type_name::<Resp>())
            .field("codec", &std::any::type_name::<C>())
            .finish()
    }
}

/// A typed request for one process pod: a value encoded by `C` when the
/// request is made, the child's answer decoded as `Resp`. Answered as
/// [`Call`](crate::Call) is, plus [`CallError::Codec`] for an answer that does not
/// decode.
pub struct TypedCall<Resp, C = Json>(Encoded<Resp, C>);

impl<Resp, C: Codec> TypedCall<Resp, C> {
    /// A request of this value, encoded now.
    ///
    /// # Errors
    ///
    /// The codec cannot encode it ([`Direction::Encode`]).
    pub fn new<Req: Serialize + ?Sized>(request: &Req) -> Result<Self, CodecError> {
        Encoded::new(request).map(TypedCall)
    }
}

impl<Resp: Send + 'static, C> Message for TypedCall<Resp, C> {
    type Result = Result<Resp, CallError>;
}

impl<Resp, C> fmt::Debug for TypedCall<Resp, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.describe("TypedCall", f)
    }
}

/// A typed request for a deployment of process replicas, encoded once when
/// it is made and routed as [`Route`](crate::deployment::Route) is (retried
/// by the same rules). Its answer is decoded where the routing ends: where
/// the replica that answered gives its answer.
pub struct TypedRoute<Resp, C = Json>(Encoded<Resp, C>);

impl<Resp, C: Codec> TypedRoute<Resp, C> {
    /// A request of this value, encoded now.
    ///
    /// # Errors
    ///
    /// The codec cannot encode it ([`Direction::Encode`]).
    pub fn new<Req: Serialize + ?Sized>(request: &Req) -> Result<Self, CodecError> {
        Encoded::new(request).map(TypedRoute)
    }
}

impl<Resp: Send + 'static, C> Message for TypedRoute<Resp, C> {
    type Result = Result<Resp, CallError>;
}

impl<Resp, C> fmt::Debug for TypedRoute<Resp, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.describe("TypedRoute", f)
    }
}

/// The child's answer, decoded.
fn decode<Resp: DeserializeOwned, C: Codec>(
    answer: Result<ProcessResponse, CallError>,
) -> Result<Resp, CallError> {
    match answer? {
        ProcessResponse::Reply(bytes) => C::decode(&bytes).map_err(CallError::Codec),
        // A `Call` is answered `Reply`; anything else is a bug of ours.
        other => Err(CallError::Runtime(runtime_actor::RuntimeError::new(
            format!("expected the child's answer, got {other:?}"),
        ))),
    }
}

impl<Resp, C> Handler<TypedCall<Resp, C>> for Pod<ProcessRuntime>
where
    Resp: DeserializeOwned + Send + 'static,
    C: Codec,
{
    type Result = CallAnswer<ProcessRuntime, Resp>;

    fn handle(&mut self, msg: TypedCall<Resp, C>, ctx: &mut Context<Self>) -> Self::Result {
        let call = self.take_call(ProcessRequest::Call(msg.0.payload), ctx);
        CallAnswer::new(call, decode::<Resp, C>)
    }
}

impl<Resp, C> Handler<TypedRoute<Resp, C>> for Deployment<ProcessRuntime>
where
    Resp: DeserializeOwned + Send + 'static,
    C: Codec,
{
    type Result = RouteAnswer<ProcessRuntime, Resp>;

    fn handle(&mut self, msg: TypedRoute<Resp, C>, _: &mut Context<Self>) -> Self::Result {
        self.route(
            ProcessRequest::Call(msg.0.payload),
            decode_routed::<Resp, C>,
        )
    }
}

/// The routed child's answer, decoded. The answer's `Deserialize` is the
/// program's code, and runs where the routing ends: a panic in it answers
/// this request and leaves every replica serving.
fn decode_routed<Resp: DeserializeOwned, C: Codec>(
    answer: Result<ProcessResponse, CallError>,
) -> Result<Resp, CallError> {
    runtime_actor::catch_outside(|| decode::<Resp, C>(answer))
        .unwrap_or_else(|panic| Err(crate::deployment::routing_panicked(panic)))
}
