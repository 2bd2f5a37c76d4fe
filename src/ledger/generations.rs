//! A bounded map that forgets by generations: when the current generation is full it
//! becomes the previous one and the one before is dropped. An entry read from the previous
//! generation moves back into the current one, so what is used keeps its place while what
//! was written once and never asked for again (a scoped token, a tool call) ages out within
//! two generations. Pure: the caller holds the lock.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

pub struct Generations<K, V> {
    current: HashMap<K, V>,
    previous: HashMap<K, V>,
    per_generation: usize,
}

impl<K: Eq + Hash, V: Clone> Generations<K, V> {
    /// At most `per_generation` entries in each of the two generations.
    pub fn new(per_generation: usize) -> Self {
        Generations {
            current: HashMap::new(),
            previous: HashMap::new(),
            per_generation: per_generation.max(1),
        }
    }

    /// The entry for `key`, moved into the current generation if it was in the previous.
    pub fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if let Some(v) = self.current.get(key) {
            return Some(v.clone());
        }
        let (key, v) = self.previous.remove_entry(key)?;
        self.insert(key, v.clone());
        Some(v)
    }

    /// The entry for `key` without moving it (for a comparison before an insert).
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.current.get(key).or_else(|| self.previous.get(key))
    }

    pub fn insert(&mut self, key: K, value: V) {
        if self.current.len() >= self.per_generation && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.previous.remove(&key);
        self.current.insert(key, value);
    }

    pub fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.current.remove(key);
        self.previous.remove(key);
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Generations;

    #[test]
    fn holds_at_most_two_generations() {
        let mut g = Generations::new(3);
        for i in 0..100 {
            g.insert(i, i * 10);
            assert!(g.len() <= 6, "{}", g.len());
        }
        assert_eq!(g.get(&99), Some(990));
        assert_eq!(g.get(&0), None, "written once, never read: forgotten");
    }

    #[test]
    fn what_is_read_keeps_its_place() {
        let mut g = Generations::new(2);
        g.insert("hot", 1);
        for i in 0..50 {
            g.insert(["a", "b", "c", "d"][i % 4], i);
            assert_eq!(g.get(&"hot"), Some(1), "after {i} other writes");
        }
    }

    #[test]
    fn an_entry_lives_in_one_generation_and_can_be_removed() {
        let mut g = Generations::new(2);
        g.insert(1, "a");
        g.insert(2, "b");
        g.insert(3, "c"); // 1 and 2 are now the previous generation
        g.insert(1, "a2");
        assert_eq!(g.len(), 3);
        assert_eq!(g.peek(&1), Some(&"a2"));
        g.remove(&2);
        assert_eq!(g.get(&2), None);
        assert_eq!(g.get(&1), Some("a2"));
        assert!(!g.is_empty());
    }
}
