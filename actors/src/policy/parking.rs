//! The parking lot: requests no target can take right now wait here, best first (highest
//! priority, then earliest deadline), until a breaker event releases them or their deadline
//! ends them. It is bounded; when full, a better request evicts the worst one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use tokio::time::Instant;

use crate::request::Priority;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    priority: Reverse<Priority>,
    deadline: Instant,
    id: u64,
}

/// A bounded set of waiting items, ordered best first.
#[derive(Debug)]
pub struct ParkingLot<T> {
    capacity: usize,
    order: BTreeMap<Key, T>,
    index: HashMap<u64, Key>,
}

/// What parking an item did.
#[derive(Debug, PartialEq, Eq)]
pub enum Parked<T> {
    /// It is parked.
    Yes,
    /// It is parked, and this worse item was evicted to make room.
    Evicted(T),
    /// The lot is full of better items: it is handed back.
    Full(T),
}

impl<T> ParkingLot<T> {
    /// An empty lot holding at most `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            order: BTreeMap::new(),
            index: HashMap::new(),
        }
    }

    /// Items parked.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is parked.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Parks `item` under a unique `id`.
    pub fn park(&mut self, id: u64, priority: Priority, deadline: Instant, item: T) -> Parked<T> {
        let key = Key {
            priority: Reverse(priority),
            deadline,
            id,
        };
        let mut evicted = None;
        if self.order.len() >= self.capacity {
            match self.order.last_key_value() {
                Some((worst, _)) if *worst > key => {
                    let worst = *worst;
                    self.index.remove(&worst.id);
                    evicted = self.order.remove(&worst);
                }
                _ => return Parked::Full(item),
            }
        }
        self.index.insert(id, key);
        self.order.insert(key, item);
        evicted.map_or(Parked::Yes, Parked::Evicted)
    }

    /// Takes the item parked under `id`, if it is still here.
    pub fn remove(&mut self, id: u64) -> Option<T> {
        let key = self.index.remove(&id)?;
        self.order.remove(&key)
    }

    /// Takes up to `limit` items for which `wanted` holds, best first.
    pub fn take(&mut self, limit: usize, wanted: impl Fn(&T) -> bool) -> Vec<T> {
        let keys: Vec<Key> = self
            .order
            .iter()
            .filter(|(_, item)| wanted(item))
            .map(|(key, _)| *key)
            .take(limit)
            .collect();
        keys.into_iter()
            .filter_map(|key| {
                self.index.remove(&key.id);
                self.order.remove(&key)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn releases_by_priority_then_deadline() {
        let t0 = Instant::now();
        let mut lot = ParkingLot::new(10);
        lot.park(
            1,
            Priority::Normal,
            t0 + Duration::from_secs(5),
            "normal-late",
        );
        lot.park(
            2,
            Priority::Sheddable,
            t0 + Duration::from_secs(1),
            "sheddable",
        );
        lot.park(
            3,
            Priority::Critical,
            t0 + Duration::from_secs(9),
            "critical",
        );
        lot.park(
            4,
            Priority::Normal,
            t0 + Duration::from_secs(2),
            "normal-early",
        );
        assert_eq!(
            lot.take(10, |_| true),
            vec!["critical", "normal-early", "normal-late", "sheddable"]
        );
        assert!(lot.is_empty());
    }

    #[test]
    fn a_full_lot_evicts_the_worst_for_a_better_item_only() {
        let t0 = Instant::now();
        let mut lot = ParkingLot::new(2);
        assert_eq!(lot.park(1, Priority::Sheddable, t0, "s"), Parked::Yes);
        assert_eq!(lot.park(2, Priority::Normal, t0, "n1"), Parked::Yes);
        assert_eq!(
            lot.park(3, Priority::Critical, t0, "c"),
            Parked::Evicted("s")
        );
        assert_eq!(
            lot.park(4, Priority::Sheddable, t0, "s2"),
            Parked::Full("s2")
        );
        assert_eq!(lot.remove(2), Some("n1"));
        assert_eq!(lot.remove(2), None);
        assert_eq!(lot.len(), 1);
    }

    #[test]
    fn take_respects_the_limit_and_the_filter() {
        let t0 = Instant::now();
        let mut lot = ParkingLot::new(10);
        for id in 0..5 {
            lot.park(id, Priority::Normal, t0 + Duration::from_secs(id), id);
        }
        assert_eq!(lot.take(2, |id| id % 2 == 1), vec![1, 3]);
        assert_eq!(lot.len(), 3);
    }
}
