//! A connection's channels as its reader holds them, indexed by channel number.

use crate::channel::Channel;
use crate::registry::ChannelCount;

/// A channel number in use.
pub(crate) enum Slot {
    /// An open channel and its state machine.
    Open(Box<Channel>),
    /// The broker sent channel.close and waits for close-ok; other frames on it are dropped.
    Closing,
}

/// The connection's channels, indexed by channel number: looked up for every frame, so a slot is one index away.
/// The vector grows to the highest number opened (at most channel_max, 2047 by default). The count of open slots
/// is kept in the connection's registry entry, touched only when a slot changes, never per frame.
#[derive(Default)]
pub(crate) struct ChannelTable {
    slots: Vec<Option<Slot>>,
    open: ChannelCount,
}

impl ChannelTable {
    /// An empty table that keeps `open` equal to its number of open channels.
    pub(crate) fn new(open: ChannelCount) -> ChannelTable {
        ChannelTable {
            slots: Vec::new(),
            open,
        }
    }

    /// The slot of channel `id`, if in use.
    pub(crate) fn get_mut(&mut self, id: u16) -> Option<&mut Slot> {
        self.slots.get_mut(usize::from(id))?.as_mut()
    }

    /// Puts `slot` at `id`, counting an open channel in the registry.
    pub(crate) fn insert(&mut self, id: u16, slot: Slot) {
        let index = usize::from(id);
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        if let Slot::Open(_) = slot {
            self.open.opened();
        }
        if let Some(Slot::Open(_)) = self.slots[index].replace(slot) {
            self.open.closed();
        }
    }

    /// The numbers of the open channels.
    pub(crate) fn open_ids(&self) -> Vec<u16> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| matches!(slot, Some(Slot::Open(_))))
            .map(|(id, _)| id as u16)
            .collect()
    }

    /// Frees `id` and returns its slot, keeping the registry's count.
    pub(crate) fn remove(&mut self, id: u16) -> Option<Slot> {
        let slot = self.slots.get_mut(usize::from(id))?.take();
        if let Some(Slot::Open(_)) = slot {
            self.open.closed();
        }
        slot
    }

    /// Takes every slot (connection cleanup), leaving the count at zero.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Slot> + '_ {
        let open = &self.open;
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .inspect(move |slot| {
                if let Slot::Open(_) = slot {
                    open.closed();
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
