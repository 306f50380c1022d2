use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{RestartPolicy, StopOutcome, Strategy};

/// Where a child is in its life, as reported by [`WhichChildren`](crate::WhichChildren).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChildState {
    /// Registered, not started yet.
    Pending,
    /// Told to start; not ready yet.
    Starting,
    /// Ready.
    Running,
    /// Exited; its restart is being decided or prepared.
    Failed,
    /// Waiting out its backoff delay before a restart.
    Restarting,
    /// Being stopped.
    Stopping,
    /// Stopped by the supervisor.
    Stopped,
    /// Exited and will not be restarted.
    Exited,
}

/// One child's state and restart statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChildStatus {
    /// The child's id.
    pub id: String,
    /// Its restart type.
    pub restart: RestartPolicy,
    /// Where it is.
    pub state: ChildState,
    /// How many times it was restarted, for any reason.
    pub restarts: u64,
    /// Its current backoff attempt (0 after a reset).
    pub attempt: u64,
    /// The cause of its last failure.
    pub last_cause: Option<String>,
    /// From failure to readiness, for its last restart (in JSON,
    /// `last_restart_latency_ms`).
    #[serde(rename = "last_restart_latency_ms", with = "crate::millis::option")]
    pub last_restart_latency: Option<Duration>,
    /// How long it has been ready, if it is (in JSON, `uptime_ms`).
    #[serde(rename = "uptime_ms", with = "crate::millis::option")]
    pub uptime: Option<Duration>,
}

/// Where the supervisor itself is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SupervisorPhase {
    /// Waiting to be started by its parent, or stopped by it.
    Idle,
    /// Starting its children in order.
    Starting,
    /// Supervising.
    Running,
    /// Stopping its children (shutdown or giving up).
    ShuttingDown,
}

/// The supervisor's status, answered to [`GetStatus`](crate::GetStatus).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SupervisorStatus {
    /// Where the supervisor is.
    pub phase: SupervisorPhase,
    /// Its strategy.
    pub strategy: Strategy,
    /// Restarts counted in the current intensity window.
    pub restarts_in_window: u64,
    /// Its children, in start order.
    pub children: Vec<ChildStatus>,
}

/// The reply to [`Shutdown`](crate::Shutdown): each child that was stopped,
/// in stop order (reverse start order).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Child ids and how each stop ended.
    pub stopped: Vec<(String, StopOutcome)>,
}
