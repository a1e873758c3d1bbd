//! The concurrency slots of one gate: at most `limit` calls hold one at once (the limit may
//! change while they run, as the "auto" limiter moves it), and callers waiting for one are
//! served fairly instead of first come, first served:
//! - by priority, in proportion to [`Priority::weight`] (stride scheduling: each class has a
//!   pass that grows by `1 / weight` with every slot it gets, and the waiting class with the
//!   smallest pass goes next), so `high` goes far more often than `low` and `low` still goes;
//! - within a priority, round-robin across lanes (organisations), so one lane's thousand
//!   waiting calls do not delay another lane's ten;
//! - within a lane, in arrival order.
//!
//! A caller that stops waiting (its job was cancelled, its task aborted) leaves the queue;
//! one that was granted a slot it never saw gives it back to the next.
//!
//! A waiter is granted its slot through its own one-shot channel: the releasing caller
//! counts the slot as held and sends, so the waiter wakes holding it without taking the
//! lock again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::store::Priority;

/// The slots of one gate.
#[derive(Debug)]
pub(crate) struct Slots {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    limit: usize,
    held: usize,
    next_id: u64,
    /// One queue per priority, indexed by [`Priority::index`].
    classes: [Class; Priority::ALL.len()],
    /// The pass of the class that got the last slot: a class that starts waiting again
    /// starts from here, so an idle spell earns it no burst.
    pass: f64,
}

/// The waiters of one priority.
#[derive(Debug, Default)]
struct Class {
    /// Stride-scheduling pass: grows by `1 / weight` each time this class gets a slot.
    pass: f64,
    /// Lanes with waiters, in round-robin order.
    turns: VecDeque<String>,
    /// Each lane's waiters, in arrival order: their ids and where their slot is sent.
    lanes: HashMap<String, VecDeque<(u64, oneshot::Sender<()>)>>,
}

/// A held slot; dropping it gives the slot back.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        state.held -= 1;
        state.grant();
    }
}

/// A caller waiting for a slot; dropping it before the slot is taken leaves the queue.
struct Waiting<'a> {
    slots: &'a Arc<Slots>,
    id: u64,
    priority: Priority,
    lane: &'a str,
    granted: oneshot::Receiver<()>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.slots.state();
        if self.granted.try_recv().is_ok() {
            // Granted while we were leaving: pass the slot on.
            state.held -= 1;
            state.grant();
        } else {
            state.classes[self.priority.index()].remove(self.lane, self.id);
        }
    }
}

impl Slots {
    /// Slots for `limit` calls at once (at least 1).
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                limit: limit.max(1),
                held: 0,
                next_id: 0,
                classes: Default::default(),
                pass: 0.0,
            }),
        })
    }

    /// Waits for a slot for a call of `lane` at `priority`.
    pub(crate) async fn acquire(self: &Arc<Self>, lane: &str, priority: Priority) -> Slot {
        let (grant, granted) = oneshot::channel();
        let id = {
            let mut state = self.state();
            let nobody_waits = state.classes.iter().all(|c| c.turns.is_empty());
            if nobody_waits && state.held < state.limit {
                state.held += 1;
                return Slot {
                    slots: self.clone(),
                };
            }
            let id = state.next_id;
            state.next_id += 1;
            state.enqueue(priority, lane, id, grant);
            id
        };
        let mut waiting = Waiting {
            slots: self,
            id,
            priority,
            lane,
            granted,
            done: false,
        };
        // The sender is only dropped by sending: a waiter leaves the queue only by
        // dropping this future, which removes it first.
        let _ = (&mut waiting.granted).await;
        waiting.done = true;
        Slot {
            slots: self.clone(),
        }
    }

    /// Sets the limit; more waiters go at once when it grows, and when it shrinks, slots
    /// are not taken back: fewer are given until the held ones fall under it.
    pub(crate) fn set_limit(&self, limit: usize) {
        let mut state = self.state();
        state.limit = limit.max(1);
        state.grant();
    }

    /// Whether a caller would get a slot at once: one is free and nobody waits for it.
    pub(crate) fn is_free(&self) -> bool {
        let state = self.state();
        state.held < state.limit && state.classes.iter().all(|c| c.turns.is_empty())
    }

    /// Slots held now.
    pub(crate) fn held(&self) -> usize {
        self.state().held
    }

    /// Callers waiting now.
    pub(crate) fn waiting(&self) -> usize {
        let state = self.state();
        state
            .classes
            .iter()
            .flat_map(|c| c.lanes.values())
            .map(VecDeque::len)
            .sum()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn enqueue(&mut self, priority: Priority, lane: &str, id: u64, grant: oneshot::Sender<()>) {
        let pass = self.pass;
        let class = &mut self.classes[priority.index()];
        if class.turns.is_empty() {
            class.pass = class.pass.max(pass);
        }
        class.push(lane, id, grant);
    }

    /// Hands free slots to waiters, fairly, while there are both.
    fn grant(&mut self) {
        while self.held < self.limit {
            let next = Priority::ALL
                .into_iter()
                .filter(|p| !self.classes[p.index()].turns.is_empty())
                .min_by(|a, b| {
                    let (a, b) = (&self.classes[a.index()], &self.classes[b.index()]);
                    a.pass.total_cmp(&b.pass)
                });
            let Some(priority) = next else { return };
            let class = &mut self.classes[priority.index()];
            self.pass = class.pass;
            let grant = class.pop(priority);
            // A waiter that left cannot be in the queue, so the send reaches it.
            self.held += 1;
            let _ = grant.send(());
        }
    }
}

impl Class {
    fn push(&mut self, lane: &str, id: u64, grant: oneshot::Sender<()>) {
        // The lane's name is copied only when it starts waiting, not for every waiter.
        if let Some(waiters) = self.lanes.get_mut(lane) {
            waiters.push_back((id, grant));
            return;
        }
        self.lanes
            .insert(lane.to_owned(), VecDeque::from([(id, grant)]));
        self.turns.push_back(lane.to_owned());
    }

    /// The next waiter: the first of the lane whose turn it is. The class must have one.
    fn pop(&mut self, priority: Priority) -> oneshot::Sender<()> {
        let lane = self
            .turns
            .pop_front()
            .expect("a class with turns has waiters");
        let waiters = self
            .lanes
            .get_mut(&lane)
            .expect("a lane in turn has waiters");
        let (_, next) = waiters.pop_front().expect("a lane in turn has waiters");
        if waiters.is_empty() {
            self.lanes.remove(&lane);
        } else {
            self.turns.push_back(lane);
        }
        self.pass += 1.0 / f64::from(priority.weight());
        next
    }

    fn remove(&mut self, lane: &str, id: u64) {
        let Some(waiters) = self.lanes.get_mut(lane) else {
            return;
        };
        waiters.retain(|(waiter, _)| *waiter != id);
        if waiters.is_empty() {
            self.lanes.remove(lane);
            self.turns.retain(|l| l != lane);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Queues `calls` (lane, priority) behind one held slot of a gate of limit 1, then
    /// releases slots one at a time and answers the order they were served in.
    async fn order(calls: &[(&'static str, Priority)]) -> Vec<usize> {
        let slots = Slots::new(1);
        let first = slots.acquire("warm-up", Priority::Normal).await;
        let (served_tx, mut served) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (i, (lane, priority)) in calls.iter().copied().enumerate() {
            let (queued, served_tx) = (slots.clone(), served_tx.clone());
            tasks.push(tokio::spawn(async move {
                let slot = queued.acquire(lane, priority).await;
                served_tx.send((i, slot)).unwrap();
            }));
            // Each registers before the next, so arrival order is the index order.
            while slots.waiting() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        let mut order = Vec::new();
        while order.len() < calls.len() {
            let (i, slot) = served.recv().await.unwrap();
            order.push(i);
            drop(slot);
        }
        order
    }

    #[tokio::test]
    async fn lanes_take_turns_whatever_their_arrival() {
        use Priority::Normal;
        let calls = [
            ("a", Normal),
            ("a", Normal),
            ("a", Normal),
            ("b", Normal),
            ("b", Normal),
        ];
        assert_eq!(order(&calls).await, [0, 3, 1, 4, 2]);
    }

    #[tokio::test]
    async fn high_goes_first_and_low_is_not_starved() {
        let mut calls = vec![("a", Priority::Low)];
        calls.extend(std::iter::repeat_n(("a", Priority::High), 40));
        let order = order(&calls).await;
        let low = order.iter().position(|&i| i == 0).unwrap();
        assert!(low > 0, "high went before low: {order:?}");
        assert!(low <= 20, "low waited behind {low} high calls: {order:?}");
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_leaves_the_queue() {
        let slots = Slots::new(1);
        let held = slots.acquire("a", Priority::Normal).await;
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("b", Priority::Normal).await }
        });
        while slots.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(slots.waiting(), 0);
        drop(held);
        assert_eq!(slots.held(), 0);
        let again = tokio::time::timeout(Duration::from_secs(5), slots.acquire("c", Priority::Low));
        assert!(
            again.await.is_ok(),
            "the slot was lost to the caller that left"
        );
    }

    #[tokio::test]
    async fn a_slot_granted_to_a_caller_that_left_goes_to_the_next() {
        let slots = Slots::new(1);
        let held = slots.acquire("a", Priority::Normal).await;
        let spawn_waiter = |lane: &'static str| {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire(lane, Priority::Normal).await })
        };
        let leaving = spawn_waiter("b");
        while slots.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        let next = spawn_waiter("c");
        while slots.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        // The slot is granted to "b", which leaves before it runs again (this test's
        // runtime runs one task at a time, and this one does not yield in between).
        drop(held);
        leaving.abort();
        assert!(leaving.await.unwrap_err().is_cancelled());
        let next = tokio::time::timeout(Duration::from_secs(5), next).await;
        assert!(next.is_ok(), "the slot was lost with the caller that left");
        assert_eq!(slots.held(), 1);
    }

    #[tokio::test]
    async fn a_raised_limit_lets_waiters_in_and_a_lowered_one_holds_them() {
        let slots = Slots::new(1);
        let one = slots.acquire("a", Priority::Normal).await;
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("a", Priority::Normal).await }
        });
        while slots.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        slots.set_limit(2);
        let two = waiter.await.unwrap();
        assert_eq!(slots.held(), 2);
        slots.set_limit(1);
        drop(one);
        let three = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("a", Priority::Normal).await }
        });
        while slots.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(slots.held(), 1, "over the lowered limit no slot is given");
        drop(two);
        let _three = three.await.unwrap();
        assert_eq!(slots.held(), 1);
    }
}
