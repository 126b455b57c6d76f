//! A connection's channels as its reader holds them, indexed by channel number.

use std::collections::HashMap;
use std::sync::Arc;

use crate::channel::Channel;
use crate::metrics::counters::{Counter, LocalCounts};
use crate::registry::{ChannelCount, ChannelProbe};

/// A channel number in use.
pub(crate) enum Slot {
    /// An open channel and its state machine.
    Open(Box<Channel>),
    /// The broker sent channel.close and waits for close-ok; other frames on it are dropped.
    Closing,
}

/// Channel numbers below this are kept in a vector indexed by number; higher ones (a client may use any number up
/// to 65535: RabbitMQ limits how many channels are open, not their numbers) in a map, so one channel numbered
/// 65535 costs one map entry rather than a 512 KiB vector. Clients number their channels from 1 up, and
/// channel_max is 2047 by default.
const DENSE: usize = 2048;

/// The connection's channels, indexed by channel number: looked up for every frame, so a slot of a usual number
/// is one index away. The count of open slots is kept in the connection's registry entry, touched only when a
/// slot changes, never per frame.
#[derive(Default)]
pub(crate) struct ChannelTable {
    /// Slots of numbers below [`DENSE`]; grows to the highest such number used.
    slots: Vec<Option<Slot>>,
    /// Slots of numbers from [`DENSE`] up.
    sparse: HashMap<u16, Slot>,
    /// Slots in use, open or closing: what channel_max limits.
    in_use: usize,
    open: ChannelCount,
    /// Channels opened and closed since the reader last flushed them into the node's counters.
    pub(crate) churn: LocalCounts,
}

impl ChannelTable {
    /// An empty table that keeps `open` equal to its number of open channels.
    pub(crate) fn new(open: ChannelCount) -> ChannelTable {
        ChannelTable {
            open,
            ..ChannelTable::default()
        }
    }

    /// The slot of channel `id`, if in use.
    pub(crate) fn get_mut(&mut self, id: u16) -> Option<&mut Slot> {
        let index = usize::from(id);
        if index < DENSE {
            self.slots.get_mut(index)?.as_mut()
        } else {
            self.sparse.get_mut(&id)
        }
    }

    /// Whether channel `id` is in use (open or closing).
    pub(crate) fn contains(&self, id: u16) -> bool {
        let index = usize::from(id);
        if index < DENSE {
            matches!(self.slots.get(index), Some(Some(_)))
        } else {
            self.sparse.contains_key(&id)
        }
    }

    /// How many channel numbers are in use, open or closing (RabbitMQ counts a channel until its close-ok).
    pub(crate) fn in_use(&self) -> usize {
        self.in_use
    }

    /// Puts `slot` at `id`, counting an open channel in the registry.
    pub(crate) fn insert(&mut self, id: u16, slot: Slot) {
        let probe: Option<Arc<dyn ChannelProbe>> = match &slot {
            Slot::Open(channel) => Some(channel.deliveries.clone()),
            Slot::Closing => None,
        };
        let index = usize::from(id);
        let old = if index < DENSE {
            if self.slots.len() <= index {
                self.slots.resize_with(index + 1, || None);
            }
            self.slots[index].replace(slot)
        } else {
            self.sparse.insert(id, slot)
        };
        match old {
            None => self.in_use += 1,
            Some(Slot::Open(_)) => {
                self.open.closed(id);
                self.churn.add(Counter::ChannelsClosed, 1);
            }
            Some(Slot::Closing) => {}
        }
        if let Some(probe) = probe {
            self.open.opened(id, Arc::downgrade(&probe));
            self.churn.add(Counter::ChannelsOpened, 1);
        }
    }

    /// The numbers of the open channels.
    pub(crate) fn open_ids(&self) -> Vec<u16> {
        let dense = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| matches!(slot, Some(Slot::Open(_))))
            .map(|(id, _)| id as u16);
        let sparse = self
            .sparse
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Open(_)))
            .map(|(id, _)| *id);
        dense.chain(sparse).collect()
    }

    /// Frees `id` and returns its slot, keeping the counts.
    pub(crate) fn remove(&mut self, id: u16) -> Option<Slot> {
        let index = usize::from(id);
        let slot = if index < DENSE {
            self.slots.get_mut(index)?.take()
        } else {
            self.sparse.remove(&id)
        };
        match &slot {
            Some(Slot::Open(_)) => {
                self.open.closed(id);
                self.churn.add(Counter::ChannelsClosed, 1);
                self.in_use -= 1;
            }
            Some(Slot::Closing) => self.in_use -= 1,
            None => {}
        }
        slot
    }

    /// Takes every slot (connection cleanup), leaving the counts at zero.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Slot> + '_ {
        let is_open = |slot: &Slot| matches!(slot, Slot::Open(_));
        let still_open = self.slots.iter().flatten().filter(|s| is_open(s)).count()
            + self.sparse.values().filter(|s| is_open(s)).count();
        self.churn.add(Counter::ChannelsClosed, still_open as u64);
        let open = &self.open;
        self.in_use = 0;
        let dense = std::mem::take(&mut self.slots).into_iter().flatten();
        let sparse = std::mem::take(&mut self.sparse).into_values();
        dense.chain(sparse).inspect(move |slot| {
            if let Slot::Open(channel) = slot {
                open.closed(channel.id);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::ConnectionShared;

    #[test]
    fn slots_are_found_by_number_and_removed_once() {
        let mut table = ChannelTable::default();
        assert!(table.get_mut(0).is_none());
        table.insert(2047, Slot::Closing);
        table.insert(3, Slot::Closing);
        assert!(matches!(table.get_mut(3), Some(Slot::Closing)));
        assert!(table.get_mut(2).is_none());
        assert!(table.remove(3).is_some());
        assert!(table.remove(3).is_none());
        assert!(table.get_mut(2048).is_none());
        assert_eq!(table.drain().count(), 1);
        assert!(table.get_mut(2047).is_none());
    }

    #[test]
    fn any_number_is_a_slot_and_every_slot_in_use_is_counted() {
        let mut table = ChannelTable::default();
        table.insert(65535, Slot::Closing);
        table.insert(1, Slot::Closing);
        table.insert(2048, Slot::Closing);
        assert_eq!(table.in_use(), 3);
        assert!(matches!(table.get_mut(65535), Some(Slot::Closing)));
        assert!(table.get_mut(65534).is_none());
        // Replacing a slot keeps the count; removing one lowers it once.
        table.insert(65535, Slot::Closing);
        assert_eq!(table.in_use(), 3);
        assert!(table.remove(65535).is_some());
        assert!(table.remove(65535).is_none());
        assert_eq!(table.in_use(), 2);
        assert!(table.slots.len() <= DENSE, "high numbers live in the map");
        assert_eq!(table.drain().count(), 2);
        assert_eq!(table.in_use(), 0);
        assert!(table.get_mut(2048).is_none());
    }

    #[test]
    fn the_open_count_follows_open_slots_only() {
        let open = ChannelCount::default();
        let mut table = ChannelTable::new(open.clone());
        let channel = |id| Slot::Open(Box::new(Channel::new(ConnectionShared::for_tests(), id)));
        table.insert(1, channel(1));
        table.insert(2, channel(2));
        table.insert(3, Slot::Closing);
        assert_eq!(open.get(), 2);
        // A channel error turns an open slot into a closing one.
        table.insert(2, Slot::Closing);
        assert_eq!(open.get(), 1);
        table.remove(3);
        assert_eq!(open.get(), 1);
        assert_eq!(table.drain().count(), 2);
        assert_eq!(open.get(), 0);
    }
}
