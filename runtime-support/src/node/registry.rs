//! [`Registry`]: a node's children by key, each key kept while its child
//! is registered and given again once it is removed.

/// Values by key: an insert takes the key removed last (or a new one), a
/// removal frees its key. What a slab does, in half the room for the
/// values a registry holds: a slot is an `Option<T>`, 8 bytes for an `Arc`
/// (whose null niche is the `None`), where a slab's entry is 16. A scope
/// holds a slot for each of its children, in a vector that grows up to
/// twice as large, so those 8 bytes are paid per child, up to twice.
#[derive(Debug)]
pub(crate) struct Registry<T> {
    slots: Vec<Option<T>>,
    /// The keys of the empty slots, the last one freed last.
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Registry<T> {
    /// How many values it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The key the next [`insert`](Self::insert) will take.
    pub(crate) fn next_key(&self) -> usize {
        match self.free.last() {
            Some(&key) => key as usize,
            None => self.slots.len(),
        }
    }

    /// Adds `value`, returning its key (the one [`next_key`](Self::next_key)
    /// said).
    pub(crate) fn insert(&mut self, value: T) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(key) => {
                self.slots[key as usize] = Some(value);
                key as usize
            }
            None => {
                self.slots.push(Some(value));
                self.slots.len() - 1
            }
        }
    }

    /// The value at `key`, if there is one.
    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        self.slots.get(key).and_then(Option::as_ref)
    }

    /// Removes and returns the value at `key`, if there is one.
    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let value = self.slots.get_mut(key).and_then(Option::take)?;
        self.vacate(key);
        Some(value)
    }

    /// Removes the values for which `remove` returns `true`, in key order,
    /// handing each to `removed`.
    pub(crate) fn remove_where(
        &mut self,
        mut remove: impl FnMut(&T) -> bool,
        mut removed: impl FnMut(T),
    ) {
        for key in 0..self.slots.len() {
            let slot = &mut self.slots[key];
            if let Some(value) = slot.take_if(|value| remove(value)) {
                self.vacate(key);
                removed(value);
            }
        }
    }

    /// The values, in key order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    fn vacate(&mut self, key: usize) {
        self.len -= 1;
        // A node's key is 28 bits (see `SLOT_MASK`).
        let key = u32::try_from(key).unwrap_or_else(|_| unreachable!("a key past 2^32"));
        self.free.push(key);
    }
}

#[cfg(all(test, not(tethered_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_freed_key_is_taken_again_last_freed_first() {
        let mut registry = Registry::default();
        let keys: Vec<_> = (0..4).map(|n| registry.insert(n)).collect();
        assert_eq!(keys, [0, 1, 2, 3]);
        assert_eq!(registry.remove(1), Some(1));
        assert_eq!(registry.remove(3), Some(3));
        assert_eq!(registry.remove(3), None);
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.next_key(), 3);
        assert_eq!(registry.insert(30), 3);
        assert_eq!(registry.insert(10), 1);
        assert_eq!(registry.next_key(), 4);
        assert_eq!(
            registry.values().copied().collect::<Vec<_>>(),
            [0, 10, 2, 30]
        );
    }

    #[test]
    fn remove_where_hands_over_what_it_removes_and_frees_their_keys() {
        let mut registry = Registry::default();
        for n in 0..6 {
            registry.insert(n);
        }
        let mut removed = Vec::new();
        registry.remove_where(|n| n % 2 == 1, |n| removed.push(n));
        assert_eq!(removed, [1, 3, 5]);
        assert_eq!(registry.len(), 3);
        assert_eq!(registry.get(1), None);
        assert_eq!(registry.get(2), Some(&2));
        assert_eq!(registry.values().copied().collect::<Vec<_>>(), [0, 2, 4]);
        // The last freed key (5) first.
        assert_eq!(registry.insert(7), 5);
    }

    #[test]
    fn a_slot_of_an_arc_is_a_pointer() {
        assert_eq!(
            std::mem::size_of::<Option<std::sync::Arc<u8>>>(),
            std::mem::size_of::<usize>()
        );
    }
}
