//! A connection's channels as its reader holds them, indexed by channel number.

use crate::channel::Channel;

pub enum Slot {
    Open(Box<Channel>),
    /// The broker sent channel.close and waits for close-ok; other frames on it are dropped.
    Closing,
}

/// The connection's channels, indexed by channel number: looked up for every frame, so a slot is one index away.
/// The vector grows to the highest number opened (at most channel_max, 2047 by default).
#[derive(Default)]
pub struct ChannelTable {
    slots: Vec<Option<Slot>>,
}

impl ChannelTable {
    pub fn get_mut(&mut self, id: u16) -> Option<&mut Slot> {
        self.slots.get_mut(usize::from(id))?.as_mut()
    }

    pub fn insert(&mut self, id: u16, slot: Slot) {
        let index = usize::from(id);
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(slot);
    }

    pub fn remove(&mut self, id: u16) -> Option<Slot> {
        self.slots.get_mut(usize::from(id))?.take()
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Slot> {
        std::mem::take(&mut self.slots).into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
