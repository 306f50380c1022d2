//! A pod of any runtime type, for code that watches and closes pods without
//! calling them: a status page over in-process and process pods alike.

use std::fmt;

use actix::{Addr, Recipient};
use runtime_actor::Runtime;

use crate::error::PodError;
use crate::messages::{
    Close, CloseReport, GetStatus, Join, PodStatus, Start, Started, SubscribeEvents,
    WaitStartSuccess,
};
use crate::pod::Pod;
use crate::stream::PodEvents;

/// A type-erased reference to a [`Pod`] of any runtime: its lifecycle,
/// status, events, close and join, without its [`Call`](crate::Call)s (which
/// need the runtime's request type).
///
/// Made from an address with `AnyPod::from`; cheap to clone. An answer that
/// cannot come because the pod is gone is [`PodError::Closed`] (a
/// [`CloseReport`] saying the reply was lost, for [`close`](Self::close)).
#[derive(Clone)]
pub struct AnyPod {
    start: Recipient<Start>,
    wait: Recipient<WaitStartSuccess>,
    status: Recipient<GetStatus>,
    events: Recipient<SubscribeEvents>,
    close: Recipient<Close>,
    join: Recipient<Join>,
}

impl<R: Runtime> From<Addr<Pod<R>>> for AnyPod {
    fn from(pod: Addr<Pod<R>>) -> Self {
        AnyPod {
            start: pod.clone().recipient(),
            wait: pod.clone().recipient(),
            status: pod.clone().recipient(),
            events: pod.clone().recipient(),
            close: pod.clone().recipient(),
            join: pod.recipient(),
        }
    }
}

impl AnyPod {
    /// Starts the pod ([`Start`]).
    ///
    /// # Errors
    ///
    /// As [`Start`]'s answer.
    pub async fn start(&self) -> Result<(), PodError> {
        self.start
            .send(Start)
            .await
            .unwrap_or(Err(PodError::Closed))
    }

    /// Waits until the pod is ready ([`WaitStartSuccess`]).
    ///
    /// # Errors
    ///
    /// As [`WaitStartSuccess`]'s answer.
    pub async fn wait_start_success(&self) -> Result<Started, PodError> {
        self.wait
            .send(WaitStartSuccess)
            .await
            .unwrap_or(Err(PodError::Closed))
    }

    /// The pod's status; `None` when the pod is gone.
    pub async fn status(&self) -> Option<PodStatus> {
        self.status.send(GetStatus).await.ok()
    }

    /// The pod's events from now on.
    pub fn events(&self) -> PodEvents {
        PodEvents::with(&self.events)
    }

    /// Closes the pod ([`Close`] with the config's `timeout_ctrl`).
    pub async fn close(&self) -> CloseReport {
        self.close
            .send(Close::default())
            .await
            .unwrap_or_else(|_| CloseReport::reply_lost())
    }

    /// Waits until the pod has terminated ([`Join`]).
    ///
    /// # Errors
    ///
    /// As [`Join`]'s answer.
    pub async fn join(&self) -> Result<(), PodError> {
        self.join.send(Join).await.unwrap_or(Err(PodError::Closed))
    }
}

impl fmt::Debug for AnyPod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyPod")
            .field("connected", &self.status.connected())
            .finish()
    }
}
