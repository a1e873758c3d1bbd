//! Which of an application's providers a call goes to.
//!
//! An application names its providers in order of preference. A call goes to the first whose
//! gate has room now ([`Room::Now`]: a free slot, no pause, a closed circuit, budget left), so
//! work spills to the next while the first is saturated, paused by backpressure or failing,
//! and returns to it as soon as it has room again. When none has room now, the call waits at
//! the first that is only busy ([`Room::Soon`]): a healthy provider frees a slot within about
//! one call, while a pause or an open circuit may last seconds to a minute, and a call that
//! waited there would stay stuck behind it. When every provider is paused or failing, it
//! waits at the first. (Waiting at every gate at once and keeping whichever admits first
//! would be exact, but an admission takes budget and shared slots on its way and cannot be
//! withdrawn cleanly.) One provider is today's path: no gate is asked.
//!
//! A provider that answers "not now" (429, 503, 529) is paused: a job it sent back returns at
//! once, instead of after the pause, when another provider is neither paused nor failing
//! ([`Providers::other_has_room`]), and goes there.

use std::sync::Arc;

use super::gate::Room;
use super::{Backend, ChatRequest, Providers};

impl Providers {
    /// The backend `request` should go to among `names` (an application's providers, in
    /// order of preference), or the first name that is not configured.
    pub(crate) fn route<'a>(
        &'a self,
        names: &'a [String],
        request: &ChatRequest,
    ) -> Result<&'a Arc<Backend>, &'a str> {
        if let [name] = names {
            return self.get(name).ok_or(name.as_str());
        }
        let backends = names
            .iter()
            .map(|name| self.get(name).ok_or(name.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let tokens = request.estimated_tokens();
        let chosen = choose(backends.iter().map(|backend| backend.gate.room(tokens)));
        // Only an empty list (which no application has) has no backend at any position.
        backends.get(chosen).copied().ok_or("")
    }

    /// Whether one of `names` other than `busy` could take a call without waiting for a
    /// pause, an open circuit or a budget: then a job `busy` told "not now" need not wait
    /// for it. One provider: no gate is asked.
    pub(crate) fn other_has_room(&self, names: &[String], busy: &str) -> bool {
        names
            .iter()
            .filter(|name| *name != busy)
            .filter_map(|name| self.get(name))
            .any(|backend| backend.gate.room(0) != Room::Later)
    }
}

/// The position of the provider to use, given each one's room in order of preference: the
/// first with room now (the rest are not looked at), else the first with the best room.
fn choose(rooms: impl IntoIterator<Item = Room>) -> usize {
    let mut best = (Room::Later, 0);
    for (i, room) in rooms.into_iter().enumerate() {
        if room == Room::Now {
            return i;
        }
        if room < best.0 {
            best = (room, i);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::Room::{Later, Now, Soon};
    use super::choose;

    #[test]
    fn the_first_provider_with_room_now_is_chosen() {
        assert_eq!(choose([Now, Now]), 0);
        assert_eq!(choose([Soon, Now]), 1, "a saturated first spills");
        assert_eq!(choose([Later, Now]), 1, "a paused or failing first spills");
        assert_eq!(choose([Later, Soon, Now]), 2);
    }

    #[test]
    fn without_room_now_the_call_waits_at_the_first_that_is_only_busy() {
        assert_eq!(choose([Later, Soon]), 1);
        assert_eq!(choose([Soon, Soon]), 0);
        assert_eq!(choose([Soon, Later]), 0);
        assert_eq!(choose([Later, Later]), 0, "all down: the first");
    }
}
