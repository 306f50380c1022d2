//! Table tests and seeded random sequences of the state machine.
use super::*;
use crate::{Backoff, Intensity};

type M = Machine<u32>;
type Out = Vec<Command<u32>>;
type Expect = fn(&Verdict) -> bool;
type Setup = fn(&mut M, Instant) -> u64;

fn plan(id: &str, restart: RestartPolicy) -> ChildPlan {
    ChildPlan {
        id: id.into(),
        restart,
        shutdown: Duration::from_secs(5),
        restart_on_start_failure: false,
    }
}

fn machine(max_restarts: u32) -> (M, Instant) {
    machine_starting(max_restarts, StartOrder::Sequential)
}

fn machine_starting(max_restarts: u32, order: StartOrder) -> (M, Instant) {
    let config = SupervisorConfig::default()
        .with_start_order(order)
        .with_intensity(Intensity::new(max_restarts, Duration::from_secs(60)))
        .with_backoff(Backoff::new(
            Duration::from_millis(100),
            2.0,
            Duration::from_secs(1),
        ))
        .with_seed(7);
    let now = Instant::now();
    let mut m = Machine::new(config, now);
    m.handle(Input::StartAll, now);
    (m, now)
}

/// Adds `id` and makes it ready; returns its generation.
fn running(m: &mut M, now: Instant, id: &str, restart: RestartPolicy) -> u64 {
    let out = m.handle(
        Input::Add {
            plan: plan(id, restart),
            ticket: 0,
        },
        now,
    );
    let generation = started(&out, id).expect("a start");
    m.handle(
        Input::Ready {
            id: id.to_owned(),
            generation,
        },
        now,
    );
    generation
}

fn started(out: &Out, id: &str) -> Option<u64> {
    out.iter().find_map(|c| match c {
        Command::Start {
            id: i, generation, ..
        } if i == id => Some(*generation),
        _ => None,
    })
}

fn verdicts(out: &Out, id: &str) -> Vec<Verdict> {
    out.iter()
        .filter_map(|c| match c {
            Command::Verdict { id: i, verdict, .. } if i == id => Some(verdict.clone()),
            _ => None,
        })
        .collect()
}

fn stops(out: &Out) -> Vec<(String, StopReason)> {
    out.iter()
        .filter_map(|c| match c {
            Command::Stop { id, reason, .. } => Some((id.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

fn exit(id: &str, generation: u64, failed: bool) -> Input<u32> {
    Input::Exited {
        id: id.to_owned(),
        generation,
        exit: if failed {
            ChildExit::Failed {
                cause: "boom".into(),
            }
        } else {
            ChildExit::Normal
        },
    }
}

#[test]
fn every_exit_gets_one_verdict_from_the_policy() {
    let delay = |v: &Verdict| matches!(v, Verdict::Restart { attempt: 1, .. });
    let table: [(RestartPolicy, bool, u32, Expect); 7] = [
        (RestartPolicy::Permanent, true, 5, delay),
        (RestartPolicy::Permanent, false, 5, delay),
        (RestartPolicy::Transient, true, 5, delay),
        (RestartPolicy::Transient, false, 5, |v| {
            *v == Verdict::NoRestart(NoRestart::NormalExit)
        }),
        (RestartPolicy::Temporary, true, 5, |v| {
            *v == Verdict::NoRestart(NoRestart::Temporary)
        }),
        (RestartPolicy::Temporary, false, 5, |v| {
            *v == Verdict::NoRestart(NoRestart::Temporary)
        }),
        (RestartPolicy::Permanent, true, 0, |v| {
            matches!(v, Verdict::NoRestart(NoRestart::GaveUp { .. }))
        }),
    ];
    for (policy, failed, max, expected) in table {
        let (mut m, now) = machine(max);
        let generation = running(&mut m, now, "c", policy);
        let out = m.handle(exit("c", generation, failed), now);
        let got = verdicts(&out, "c");
        assert_eq!(got.len(), 1, "{policy:?} failed={failed}: {out:?}");
        assert!(expected(&got[0]), "{policy:?} failed={failed}: {got:?}");
    }
}

#[test]
fn stale_and_unknown_exits_change_nothing() {
    let (mut m, now) = machine(5);
    let generation = running(&mut m, now, "c", RestartPolicy::Permanent);
    assert!(m.handle(exit("c", generation - 1, true), now).is_empty());
    assert!(m.handle(exit("nobody", 1, true), now).is_empty());
    assert_eq!(m.status(now).restarts_in_window, 0);
}

#[test]
fn a_removal_in_every_state_is_never_an_exit() {
    // (what happens before the removal, what the removal must send)
    let setups: [(&str, Setup); 4] = [
        ("running", |m, now| {
            running(m, now, "c", RestartPolicy::Permanent)
        }),
        ("backoff", |m, now| {
            let g = running(m, now, "c", RestartPolicy::Permanent);
            m.handle(exit("c", g, true), now);
            g
        }),
        ("starting", |m, now| {
            let out = m.handle(
                Input::Add {
                    plan: plan("c", RestartPolicy::Permanent),
                    ticket: 9,
                },
                now,
            );
            started(&out, "c").unwrap()
        }),
        ("restart setup", |m, now| {
            let g = running(m, now, "c", RestartPolicy::Permanent);
            m.handle(exit("c", g, true), now);
            let out = m.handle(Input::Timer { token: 1 }, now);
            started(&out, "c").unwrap()
        }),
    ];
    for (name, setup) in setups {
        let (mut m, now) = machine(5);
        let sibling = running(&mut m, now, "s", RestartPolicy::Permanent);
        let generation = setup(&mut m, now);
        let counted = m.status(now).restarts_in_window;
        let out = m.handle(
            Input::Remove {
                id: "c".into(),
                ticket: 1,
            },
            now,
        );
        let mut all = out;
        if let Some((id, _)) = stops(&all).first() {
            assert_eq!(id, "c", "{name}");
            all.extend(m.handle(
                Input::Stopped {
                    id: "c".into(),
                    generation,
                    outcome: StopOutcome::Gracefully,
                },
                now,
            ));
        }
        // Its late exit and a stale timer are ignored too.
        all.extend(m.handle(exit("c", generation, true), now));
        all.extend(m.handle(Input::Timer { token: 1 }, now));
        assert!(
            all.iter().any(|c| matches!(
                c,
                Command::Answer {
                    ticket: 1,
                    answer: Answer::Removed(Ok(_))
                }
            )),
            "{name}: {all:?}"
        );
        assert!(
            all.iter()
                .any(|c| matches!(c, Command::Forget { id } if id == "c")),
            "{name}: {all:?}"
        );
        assert!(started(&all, "c").is_none(), "{name}: restarted {all:?}");
        assert!(
            !all.iter().any(|c| match c {
                Command::Stop { id, .. } | Command::Start { id, .. } => id == "s",
                Command::Emit(e) => e.child() == Some("s") || e.child().is_none(),
                _ => false,
            }),
            "{name}: the sibling saw it: {all:?}"
        );
        let status = m.status(now);
        assert_eq!(status.restarts_in_window, counted, "{name}");
        assert_eq!(status.phase, SupervisorPhase::Running, "{name}");
        let ids: Vec<_> = status.children.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["s"], "{name}");
        let _ = sibling;
    }
}

#[test]
fn a_child_that_leaves_is_sent_nothing_and_releases_the_job_waiting_for_it() {
    let (mut m, now) = machine(5);
    let g = running(&mut m, now, "c", RestartPolicy::Permanent);
    running(&mut m, now, "s", RestartPolicy::Permanent);
    // An owner's restart of `c` waits for its stop reply when `c` leaves.
    let out = m.handle(
        Input::Restart {
            id: "c".into(),
            ticket: 5,
        },
        now,
    );
    assert_eq!(stops(&out), [("c".to_owned(), StopReason::Restart)]);
    let out = m.handle(Input::Left { id: "c".into() }, now);
    assert!(out.contains(&Command::Answer {
        ticket: 5,
        answer: Answer::Restarted(Err(Error::ChildRemoved { id: "c".into() })),
    }));
    assert!(out.contains(&Command::Forget { id: "c".into() }));
    assert!(
        verdicts(&out, "c").is_empty() && stops(&out).is_empty() && started(&out, "c").is_none()
    );
    // Its late stop reply and exit change nothing.
    let late = m.handle(
        Input::Stopped {
            id: "c".into(),
            generation: g,
            outcome: StopOutcome::Gracefully,
        },
        now,
    );
    assert!(late.is_empty(), "{late:?}");
    assert!(m.handle(exit("c", g, true), now).is_empty());
    assert_eq!(m.status(now).restarts_in_window, 0);
}

#[test]
fn an_add_whose_child_is_removed_before_ready_is_answered() {
    let (mut m, now) = machine(5);
    let out = m.handle(
        Input::Add {
            plan: plan("c", RestartPolicy::Permanent),
            ticket: 3,
        },
        now,
    );
    let generation = started(&out, "c").unwrap();
    let mut out = m.handle(
        Input::Remove {
            id: "c".into(),
            ticket: 4,
        },
        now,
    );
    out.extend(m.handle(
        Input::Stopped {
            id: "c".into(),
            generation,
            outcome: StopOutcome::Gracefully,
        },
        now,
    ));
    assert!(out.contains(&Command::Answer {
        ticket: 3,
        answer: Answer::Added(Err(Error::ChildRemoved { id: "c".into() })),
    }));
    assert!(out.contains(&Command::Answer {
        ticket: 4,
        answer: Answer::Removed(Ok(StopOutcome::Gracefully)),
    }));
    // The queue moves on: the next add starts at once.
    let out = m.handle(
        Input::Add {
            plan: plan("d", RestartPolicy::Permanent),
            ticket: 5,
        },
        now,
    );
    assert!(started(&out, "d").is_some());
}

#[test]
fn a_shutdown_tells_children_waiting_for_a_restart_that_none_will_come() {
    let (mut m, now) = machine(5);
    let g = running(&mut m, now, "c", RestartPolicy::Permanent);
    running(&mut m, now, "s", RestartPolicy::Permanent);
    m.handle(exit("c", g, true), now);
    let mut out = m.handle(
        Input::Shutdown {
            ticket: 8,
            by: ShutdownBy::Owner,
        },
        now,
    );
    let s_generation = m.children["s"].generation;
    out.extend(m.handle(
        Input::Stopped {
            id: "s".into(),
            generation: s_generation,
            outcome: StopOutcome::Gracefully,
        },
        now,
    ));
    assert_eq!(
        verdicts(&out, "c"),
        [Verdict::NoRestart(NoRestart::ShuttingDown)]
    );
    assert_eq!(stops(&out), [("s".to_owned(), StopReason::Shutdown)]);
    assert_eq!(out.last(), Some(&Command::StopActor));
    m.handle(Input::Timer { token: 1 }, now);
    assert!(started(&m.handle(Input::Timer { token: 1 }, now), "c").is_none());
}

#[test]
fn a_failed_owner_restart_leaves_the_child_stopped() {
    let (mut m, now) = machine(0);
    let g = running(&mut m, now, "c", RestartPolicy::Permanent);
    let out = m.handle(
        Input::Restart {
            id: "c".into(),
            ticket: 2,
        },
        now,
    );
    assert_eq!(stops(&out), [("c".to_owned(), StopReason::Restart)]);
    let out = m.handle(
        Input::Stopped {
            id: "c".into(),
            generation: g,
            outcome: StopOutcome::Gracefully,
        },
        now,
    );
    let g2 = started(&out, "c").unwrap();
    let out = m.handle(exit("c", g2, true), now);
    assert_eq!(
        verdicts(&out, "c"),
        [Verdict::NoRestart(NoRestart::FailedToStart)]
    );
    assert!(out.iter().any(|c| matches!(
        c,
        Command::Answer {
            ticket: 2,
            answer: Answer::Restarted(Err(Error::ChildFailedToStart { .. }))
        }
    )));
    assert_eq!(m.phase(), SupervisorPhase::Running);
    assert_eq!(m.status(now).children[0].state, ChildState::Exited);
}

/// Seeded random sequences: whatever the order, every exit of a live
/// generation gets exactly one verdict, every ticket one answer, and
/// removals never count against the intensity.
#[test]
fn random_sequences_keep_the_invariants() {
    for (seed, order) in
        (0..300).flat_map(|s| [(s, StartOrder::Sequential), (s, StartOrder::Concurrent)])
    {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (mut m, now) = machine_starting(1_000, order);
        let mut answered = std::collections::HashMap::new();
        let mut asked = 0u32;
        let mut live: HashMap<String, u64> = HashMap::new();
        let mut exits = 0usize;
        let mut verdicts_seen = 0usize;
        let mut stops_pending: Vec<(String, u64)> = Vec::new();
        for step in 0..200 {
            let id = format!("c{}", rng.u8(0..6));
            let input = match rng.u8(0..7) {
                0 => {
                    asked += 1;
                    Input::Add {
                        plan: plan(&id, RestartPolicy::Permanent),
                        ticket: asked,
                    }
                }
                1 => {
                    asked += 1;
                    Input::Remove { id, ticket: asked }
                }
                2 => match live.get(&id) {
                    Some(&g) => Input::Ready { id, generation: g },
                    None => continue,
                },
                3 => match live.remove(&id) {
                    Some(g) => {
                        exits += 1;
                        exit(&id, g, true)
                    }
                    None => continue,
                },
                4 => Input::Timer {
                    token: rng.u64(1..20),
                },
                5 if !stops_pending.is_empty() => {
                    let (id, generation) =
                        stops_pending.swap_remove(rng.usize(..stops_pending.len()));
                    Input::Stopped {
                        id,
                        generation,
                        outcome: StopOutcome::Gracefully,
                    }
                }
                _ => {
                    asked += 1;
                    Input::Restart { id, ticket: asked }
                }
            };
            let before = m.status(now).restarts_in_window;
            let removal = matches!(input, Input::Remove { .. });
            let exited = match &input {
                Input::Exited { id, generation, .. } => Some((id.clone(), *generation)),
                _ => None,
            };
            let out = m.handle(input, now);
            if removal {
                assert_eq!(
                    m.status(now).restarts_in_window,
                    before,
                    "seed {seed} step {step}"
                );
            }
            if let Some((id, generation)) = exited {
                let answers = out
                    .iter()
                    .filter(|c| {
                        matches!(c, Command::Verdict { id: i, generation: g, .. }
                        if *i == id && *g == generation)
                    })
                    .count();
                assert_eq!(answers, 1, "seed {seed} step {step}: {out:?}");
            }
            for command in out {
                match command {
                    Command::Start { id, generation, .. } => {
                        live.insert(id, generation);
                    }
                    Command::Stop { id, generation, .. } => {
                        live.remove(&id);
                        stops_pending.push((id, generation));
                    }
                    Command::Verdict { generation, .. } if generation > 0 => {
                        verdicts_seen += 1;
                    }
                    Command::Answer { ticket, .. } => {
                        assert!(
                            answered.insert(ticket, step).is_none(),
                            "seed {seed}: ticket {ticket} answered twice"
                        );
                    }
                    _ => {}
                }
            }
        }
        // Exits of live generations each got a verdict; verdicts for
        // cancelled restarts and removals come on top.
        assert!(
            verdicts_seen >= exits,
            "seed {seed}: {verdicts_seen} < {exits}"
        );
    }
}

// ===== concurrent start =====

fn add(id: &str, ticket: u32) -> Input<u32> {
    Input::Add {
        plan: plan(id, RestartPolicy::Permanent),
        ticket,
    }
}

#[test]
fn a_concurrent_start_starts_every_child_at_once() {
    let (mut m, now) = machine_starting(5, StartOrder::Concurrent);
    let mut generations = Vec::new();
    for (ticket, id) in ["a", "b", "c"].into_iter().enumerate() {
        let out = m.handle(add(id, ticket as u32), now);
        // Started and answered at once, before any readiness.
        generations.push(started(&out, id).expect("started at once"));
        assert!(out.contains(&Command::Answer {
            ticket: ticket as u32,
            answer: Answer::Added(Ok(())),
        }));
    }
    // The sequential machine waits for `a` before starting `b`.
    let (mut ordered, now) = machine_starting(5, StartOrder::Sequential);
    assert!(started(&ordered.handle(add("a", 0), now), "a").is_some());
    assert!(started(&ordered.handle(add("b", 1), now), "b").is_none());

    // Readiness in any order.
    for (id, generation) in [
        ("c", generations[2]),
        ("a", generations[0]),
        ("b", generations[1]),
    ] {
        m.handle(
            Input::Ready {
                id: id.to_owned(),
                generation,
            },
            now,
        );
    }
    let status = m.status(now);
    assert!(
        status
            .children
            .iter()
            .all(|c| c.state == ChildState::Running),
        "{status:?}"
    );
}

#[test]
fn a_failed_first_start_fails_alone_in_a_concurrent_start() {
    let (mut m, now) = machine_starting(5, StartOrder::Concurrent);
    let a = started(&m.handle(add("a", 0), now), "a").unwrap();
    let b = started(&m.handle(add("b", 1), now), "b").unwrap();
    let out = m.handle(exit("a", a, true), now);
    assert_eq!(
        verdicts(&out, "a"),
        [Verdict::NoRestart(NoRestart::FailedToStart)]
    );
    assert!(stops(&out).is_empty(), "no sibling is touched: {out:?}");
    assert_eq!(
        m.status(now).restarts_in_window,
        0,
        "a failed start is no restart"
    );
    let ids: Vec<_> = m
        .status(now)
        .children
        .iter()
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(ids, ["b"], "the failed child is forgotten");
    m.handle(
        Input::Ready {
            id: "b".into(),
            generation: b,
        },
        now,
    );
    // Once running, a failure restarts it as usual.
    let out = m.handle(exit("b", b, true), now);
    assert!(matches!(
        verdicts(&out, "b")[..],
        [Verdict::Restart { attempt: 1, .. }]
    ));
}

#[test]
fn a_restart_child_still_waits_for_readiness_in_a_concurrent_start() {
    let (mut m, now) = machine_starting(5, StartOrder::Concurrent);
    let a = running(&mut m, now, "a", RestartPolicy::Permanent);
    let out = m.handle(
        Input::Restart {
            id: "a".into(),
            ticket: 9,
        },
        now,
    );
    assert_eq!(stops(&out).len(), 1);
    let out = m.handle(
        Input::Stopped {
            id: "a".into(),
            generation: a,
            outcome: StopOutcome::Gracefully,
        },
        now,
    );
    let next = started(&out, "a").expect("started again");
    let answered = |out: &Out| {
        out.iter()
            .any(|c| matches!(c, Command::Answer { ticket: 9, .. }))
    };
    assert!(!answered(&out), "answered before the child was ready");
    let out = m.handle(
        Input::Ready {
            id: "a".into(),
            generation: next,
        },
        now,
    );
    assert!(answered(&out));
}
