//! What `/proc` says of processes, read one way for every part of the
//! process runtime: the pod's own processes, and the owners that left
//! cgroups or notify sockets behind.

use std::ffi::OsStr;

/// What `/proc/<pid>/stat` says of a process.
pub(crate) struct Stat {
    pub(crate) state: char,
    pub(crate) parent: u32,
    pub(crate) group: u32,
    pub(crate) session: u32,
    /// Clock ticks since boot; with the pid it names one process for good.
    pub(crate) start: u64,
}

pub(crate) fn stat(pid: u32) -> Option<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip to
    // the last `)`; then state, parent, group and session (fields 3 to 6),
    // and the start time (field 22).
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    let start = fields.nth(15)?.parse().ok()?;
    Some(Stat {
        state,
        parent,
        group,
        session,
        start,
    })
}

/// Whether `pid` runs: it exists and is not a zombie waiting to be reaped.
pub(crate) fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// Whether `pid` is `ancestor` or below it (while the chain of parents
/// holds: an orphan's parent is its subreaper).
pub(crate) fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut at = pid;
    for _ in 0..64 {
        if at == ancestor {
            return true;
        }
        match stat(at) {
            Some(s) if s.parent > 1 => at = s.parent,
            _ => return false,
        }
    }
    false
}

/// The processes (zombies included) of process group `group` in session
/// `session`, sorted.
pub(crate) fn group_members(group: u32, session: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|s| s.group == group && s.session == session))
        .collect();
    pids.sort_unstable();
    pids
}

/// This process as an owner of what it leaves on the host: `<pid>-<start
/// time>`, which no other process will ever be; in a pid namespace other
/// than the host's, with its tag first (see [`namespace_tag`]).
pub(crate) fn owner_mark() -> Option<String> {
    let me = std::process::id();
    stat(me).map(|s| format!("{}{me}-{}", namespace_tag(), s.start))
}

/// `""` in the host's pid namespace, `n<inode>-` in any other. A pid and
/// start time name a process in one pid namespace only: an owner judges
/// (and may remove) only what owners of its own namespace left, and a
/// container's PID 1 is never taken for the host's.
pub(crate) fn namespace_tag() -> &'static str {
    /// The kernel's inode number of the initial pid namespace.
    const INITIAL: u64 = 0xEFFF_FFFC;
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let link = std::fs::read_link("/proc/self/ns/pid").unwrap_or_default();
        let inode = link
            .to_str()
            .and_then(|l| l.strip_prefix("pid:["))
            .and_then(|l| l.strip_suffix(']'))
            .and_then(|n| n.parse::<u64>().ok());
        match inode {
            Some(INITIAL) => String::new(),
            Some(inode) => format!("n{inode}-"),
            // No namespace to read: judge nothing of the host's.
            None => "n0-".into(),
        }
    })
}

/// Whether `name`, `<prefix><pid>-<start time>` (then `-…` when
/// `suffixed`), was left by an owner that is no longer alive. A name of
/// another shape is nobody's leftover: false.
pub(crate) fn left_by_dead_owner(name: &OsStr, prefix: &str, suffixed: bool) -> bool {
    let owner = || {
        let rest = name.to_str()?.strip_prefix(prefix)?;
        let rest = rest.strip_prefix(namespace_tag())?;
        let mut parts = rest.splitn(3, '-');
        let pid: u32 = parts.next()?.parse().ok()?;
        let start: u64 = parts.next()?.parse().ok()?;
        (parts.next().is_some() == suffixed).then_some((pid, start))
    };
    match owner() {
        Some((pid, start)) => stat(pid).map(|s| s.start) != Some(start),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(name: &str, prefix: &str, suffixed: bool) -> bool {
        left_by_dead_owner(OsStr::new(name), prefix, suffixed)
    }

    #[test]
    fn this_process_is_a_live_owner() {
        let mark = owner_mark().unwrap();
        assert!(!dead(&format!("pod-actor-{mark}"), "pod-actor-", false));
        assert!(!dead(
            &format!("pod-notify-{mark}-Ab12Cd"),
            "pod-notify-",
            true
        ));
        assert!(stat(u32::MAX).is_none());
    }

    #[test]
    fn names_of_dead_owners_are_told_from_other_names() {
        let me = std::process::id();
        // The same pid with another start time: a dead owner whose pid was
        // given to this process.
        assert!(dead(&format!("pod-actor-{me}-1"), "pod-actor-", false));
        assert!(dead("pod-actor-4294967295-12345", "pod-actor-", false));
        assert!(dead("pod-notify-4294967295-7-x", "pod-notify-", true));
        let others = [
            "pod-actor-42",
            "other-42-1",
            "pod-actor-x-1",
            "pod-actor-42-y",
            "pod-actor-4294967295-1-x",
        ];
        for other in others {
            assert!(!dead(other, "pod-actor-", false), "{other}");
        }
        // An owner of another pid namespace is never judged from this one.
        assert!(!dead("pod-actor-n4026532999-1-1", "pod-actor-", false));
        assert!(!dead("pod-notify-4294967295-1", "pod-notify-", true));
    }
}
