//! The ready lists: recipients whose time has come, grouped so one job takes a group.
//!
//! A *group* is the ready recipients of one message on one route key (a local user, or a
//! remote domain). Local groups wait in one FIFO and take turns (a group cut by the batch
//! limit goes to the back). Remote groups wait in a FIFO per domain,
//! and the domains with waiting work take turns (round robin) under the fairness cap.
//!
//! Entries carry a generation number; an entry whose recipient has since moved on (a hold,
//! a flush, a deletion) no longer matches the recipient's state and is skipped when met.
//! The `waiting` counters are exact: they change when a recipient enters or leaves the
//! ready state, not when stale entries are dropped. Every operation costs O(1) amortized
//! plus the entries it hands out; nothing scans the queue.

use std::collections::{HashMap, VecDeque};

use mta_queue::MessageId;

use crate::Channel;

type GroupKey = (MessageId, Channel, Vec<u8>);

#[derive(Debug, Default)]
struct Group {
    entries: VecDeque<(u32, u64)>,
}

#[derive(Debug, Default)]
struct Domain {
    /// Messages with a group for this domain (each at most once).
    fifo: VecDeque<MessageId>,
    running: usize,
    waiting: usize,
    in_turn: bool,
}

/// What a take hands out: the message, the route key and the recipients' indexes.
pub(crate) type Taken = (MessageId, Vec<u8>, Vec<u32>);

#[derive(Debug, Default)]
pub(crate) struct Ready {
    groups: HashMap<GroupKey, Group>,
    local: VecDeque<GroupKey>,
    domains: HashMap<Vec<u8>, Domain>,
    turns: VecDeque<Vec<u8>>,
    waiting: [usize; 2],
    domains_waiting: usize,
}

impl Ready {
    /// Recipients ready on `channel`.
    pub(crate) fn waiting(&self, channel: Channel) -> usize {
        self.waiting[channel.slot()]
    }

    /// Remote jobs running for `domain` (lowercased).
    pub(crate) fn domain_running(&self, domain: &[u8]) -> usize {
        self.domains.get(domain).map_or(0, |d| d.running)
    }

    /// Sum of the per-domain running counts.
    pub(crate) fn domains_running_total(&self) -> usize {
        self.domains.values().map(|d| d.running).sum()
    }

    /// Recipient `index` of message `id` is ready under generation `generation`.
    pub(crate) fn push(
        &mut self,
        id: MessageId,
        channel: Channel,
        key: &[u8],
        index: u32,
        generation: u64,
    ) {
        let gk = (id, channel, key.to_vec());
        let group = self.groups.entry(gk.clone()).or_default();
        let fresh = group.entries.is_empty();
        group.entries.push_back((index, generation));
        self.waiting[channel.slot()] += 1;
        match channel {
            Channel::Local => {
                if fresh {
                    self.local.push_back(gk);
                }
            }
            Channel::Remote => {
                let dom = self.domains.entry(gk.2).or_default();
                if fresh {
                    dom.fifo.push_back(id);
                }
                dom.waiting += 1;
                if dom.waiting == 1 {
                    self.domains_waiting += 1;
                }
                if !dom.in_turn {
                    dom.in_turn = true;
                    self.turns.push_back(key.to_vec());
                }
            }
        }
    }

    /// A ready recipient left the ready state without being taken (hold, deletion): its
    /// entry stays behind, stale.
    pub(crate) fn unready(&mut self, channel: Channel, key: &[u8]) {
        self.waiting[channel.slot()] = self.waiting[channel.slot()].saturating_sub(1);
        if channel == Channel::Remote
            && let Some(dom) = self.domains.get_mut(key)
        {
            dom.waiting = dom.waiting.saturating_sub(1);
            if dom.waiting == 0 {
                self.domains_waiting = self.domains_waiting.saturating_sub(1);
            }
        }
    }

    /// The next local group: up to `batch(message, waiting)` of its live entries.
    pub(crate) fn take_local(
        &mut self,
        batch: impl Fn(MessageId, usize) -> usize,
        live: impl Fn(MessageId, u32, u64) -> bool,
    ) -> Option<Taken> {
        while let Some(gk) = self.local.pop_front() {
            let max = batch(gk.0, self.waiting[0]).max(1);
            let Some(group) = self.groups.get_mut(&gk) else {
                continue;
            };
            let taken = take(group, gk.0, max, &live);
            let empty = group.entries.is_empty();
            self.waiting[0] = self.waiting[0].saturating_sub(taken.len());
            if empty {
                self.groups.remove(&gk);
            } else {
                // Groups take turns: a long list does not keep a short message waiting.
                self.local.push_back(gk.clone());
            }
            if !taken.is_empty() {
                return Some((gk.0, gk.2, taken));
            }
        }
        None
    }

    /// The next remote group under the fairness rule: a domain may run at most
    /// `max(1, limit / 2)` jobs while another domain has work waiting, and up to `limit`
    /// when it is the only one. Domains take turns.
    pub(crate) fn take_remote(
        &mut self,
        limit: usize,
        per_domain: Option<usize>,
        batch: impl Fn(MessageId) -> usize,
        live: impl Fn(MessageId, u32, u64) -> bool,
    ) -> Option<Taken> {
        let shared_cap = (limit / 2).max(1);
        let mut turns = self.turns.len();
        while turns > 0 {
            turns -= 1;
            let name = self.turns.pop_front()?;
            let Some(dom) = self.domains.get_mut(&name) else {
                continue;
            };
            if dom.waiting == 0 {
                // Only stale entries are left: drop them with their groups.
                dom.in_turn = false;
                for id in dom.fifo.drain(..) {
                    self.groups.remove(&(id, Channel::Remote, name.clone()));
                }
                if dom.running == 0 {
                    self.domains.remove(&name);
                }
                continue;
            }
            let cap = if self.domains_waiting > 1 {
                shared_cap
            } else {
                limit
            };
            let cap = per_domain.map_or(cap, |most| cap.min(most.max(1)));
            if dom.running >= cap {
                self.turns.push_back(name);
                continue;
            }
            while let Some(id) = dom.fifo.pop_front() {
                let gk = (id, Channel::Remote, name.clone());
                let Some(group) = self.groups.get_mut(&gk) else {
                    continue;
                };
                let taken = take(group, id, batch(id).max(1), &live);
                if group.entries.is_empty() {
                    self.groups.remove(&gk);
                } else {
                    dom.fifo.push_front(id);
                }
                if taken.is_empty() {
                    continue;
                }
                dom.waiting = dom.waiting.saturating_sub(taken.len());
                self.waiting[1] = self.waiting[1].saturating_sub(taken.len());
                if dom.waiting == 0 {
                    self.domains_waiting = self.domains_waiting.saturating_sub(1);
                }
                dom.running += 1;
                // Round robin: the domain goes to the back of the line.
                self.turns.push_back(name.clone());
                return Some((id, name, taken));
            }
            // invariant: `waiting` counts live entries, which sit in groups on the fifo;
            // reaching here would mean a counting slip, so recover instead of spinning.
            dom.in_turn = false;
            self.domains_waiting = self.domains_waiting.saturating_sub(1);
            self.waiting[1] = self.waiting[1].saturating_sub(dom.waiting);
            dom.waiting = 0;
        }
        None
    }

    /// A remote job for `domain` finished.
    pub(crate) fn remote_done(&mut self, domain: &[u8]) {
        if let Some(dom) = self.domains.get_mut(domain) {
            dom.running = dom.running.saturating_sub(1);
            if dom.running == 0 && !dom.in_turn && dom.fifo.is_empty() {
                self.domains.remove(domain);
            }
        }
    }
}

/// Pops up to `max` live entries off the front of `group`, dropping stale ones met on the
/// way.
fn take(
    group: &mut Group,
    id: MessageId,
    max: usize,
    live: &impl Fn(MessageId, u32, u64) -> bool,
) -> Vec<u32> {
    let mut out = Vec::new();
    while out.len() < max {
        let Some((index, generation)) = group.entries.pop_front() else {
            break;
        };
        if live(id, index, generation) {
            out.push(index);
        }
    }
    out
}
