//! A value per connection, keyed by workspace then id and looked up by `&str`: a batch or
//! a rebuild asks once per event, so no key is built per lookup, and a workspace's id is
//! copied once, when its first connection comes in.

use foldhash::HashMap;

/// Hashed with foldhash: the keys are ids from the log, the map lives for one batch or one
/// rebuild.
pub(super) struct ByConnection<V>(HashMap<String, HashMap<String, V>>);

impl<V> Default for ByConnection<V> {
    fn default() -> Self {
        Self(HashMap::default())
    }
}

impl<V> ByConnection<V> {
    pub(super) fn get(&self, workspace_id: &str, id: &str) -> Option<&V> {
        self.0.get(workspace_id)?.get(id)
    }

    pub(super) fn insert(&mut self, workspace_id: &str, id: &str, value: V) {
        match self.0.get_mut(workspace_id) {
            Some(ids) => {
                ids.insert(id.to_string(), value);
            }
            None => {
                let mut ids = HashMap::default();
                ids.insert(id.to_string(), value);
                self.0.insert(workspace_id.to_string(), ids);
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_found_by_its_workspace_and_id_only() {
        let mut map = ByConnection::default();
        map.insert("w1", "c1", 1);
        map.insert("w1", "c2", 2);
        map.insert("w2", "c1", 3);
        map.insert("w1", "c1", 4);
        assert_eq!(map.get("w1", "c1"), Some(&4));
        assert_eq!(map.get("w1", "c2"), Some(&2));
        assert_eq!(map.get("w2", "c1"), Some(&3));
        assert_eq!(map.get("w2", "c2"), None);
        assert_eq!(map.get("w3", "c1"), None);
        map.clear();
        assert_eq!(map.get("w1", "c1"), None);
    }
}
