use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::ChildExit;

/// When a child that exited is restarted (OTP restart types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// Always restarted, whatever the exit.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit ([`ChildExit::Failed`]).
    Transient,
    /// Never restarted; removed from the supervisor when it exits, and not
    /// restarted either when a sibling's failure stops it.
    Temporary,
}

impl RestartPolicy {
    /// Whether a child with this policy is restarted after `exit`.
    #[must_use]
    pub fn should_restart(self, exit: &ChildExit) -> bool {
        match self {
            RestartPolicy::Permanent => true,
            RestartPolicy::Transient => matches!(exit, ChildExit::Failed { .. }),
            RestartPolicy::Temporary => false,
        }
    }
}

/// Which children are restarted when one of them fails (OTP strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Strategy {
    /// Only the failed child.
    #[default]
    OneForOne,
    /// Every child: the others are stopped in reverse start order, then all
    /// are restarted in start order.
    OneForAll,
    /// The failed child and every child started after it.
    RestForOne,
}

impl Strategy {
    /// The positions (in start order) affected by the failure of the child at
    /// `failed` among `len` children.
    #[must_use]
    pub fn affected(self, failed: usize, len: usize) -> Range<usize> {
        let failed = failed.min(len);
        match self {
            Strategy::OneForOne => failed..(failed + 1).min(len),
            Strategy::OneForAll => 0..len,
            Strategy::RestForOne => failed..len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_types() {
        let failed = ChildExit::Failed {
            cause: "boom".into(),
        };
        let table = [
            (RestartPolicy::Permanent, true, true),
            (RestartPolicy::Transient, false, true),
            (RestartPolicy::Temporary, false, false),
        ];
        for (policy, normal, abnormal) in table {
            assert_eq!(
                policy.should_restart(&ChildExit::Normal),
                normal,
                "{policy:?}"
            );
            assert_eq!(policy.should_restart(&failed), abnormal, "{policy:?}");
        }
    }

    #[test]
    fn affected_ranges() {
        assert_eq!(Strategy::OneForOne.affected(1, 3), 1..2);
        assert_eq!(Strategy::OneForAll.affected(1, 3), 0..3);
        assert_eq!(Strategy::RestForOne.affected(1, 3), 1..3);
        assert_eq!(Strategy::RestForOne.affected(5, 3), 3..3);
    }
}
