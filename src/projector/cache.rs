//! Per-instance cache of the projection reads on every agent request (authentication,
//! workspace tools, gateways, connection rows).
//!
//! An entry is tagged with its family's generation as it was when the read began. The store
//! bumps a family's generation when it commits a batch that changes that family, and every
//! family when the offset moved without this instance applying the events (another instance
//! did), always before it announces the new offset. So an entry read before a change is
//! never served after it, and read-your-writes holds. Entries also expire after `MAX_AGE`,
//! which bounds staleness if this instance's projector stops following the log.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a projection change can make stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    ApiKeys,
    Workspaces,
    WorkspaceTools,
    Gateways,
    Connections,
}

const FAMILIES: [Family; 5] = [
    Family::ApiKeys,
    Family::Workspaces,
    Family::WorkspaceTools,
    Family::Gateways,
    Family::Connections,
];

/// Longest an entry is served without being read again.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Bound on entries (a miss costs one read).
const MAX_ENTRIES: usize = 50_000;
/// Entries from which a `put` first drops the stale ones.
const SWEEP_FROM: usize = 1_024;

type Entry = (u64, Instant, Arc<dyn Any + Send + Sync>);

#[derive(Default)]
struct Entries {
    map: HashMap<(Family, String), Entry>,
    /// The next sweep's size: twice what the last one kept (at least `SWEEP_FROM`), so
    /// sweeps cost O(1) per `put` however many entries stay fresh.
    sweep_at: usize,
}

#[derive(Default)]
pub struct ReadCache {
    generations: [AtomicU64; FAMILIES.len()],
    entries: Mutex<Entries>,
}

impl ReadCache {
    fn slot(&self, family: Family) -> &AtomicU64 {
        &self.generations[family as usize]
    }

    /// Take this before reading the value to `put`.
    pub fn generation(&self, family: Family) -> u64 {
        self.slot(family).load(Ordering::SeqCst)
    }

    pub fn get<T: Clone + 'static>(&self, family: Family, key: &str) -> Option<T> {
        let current = self.generation(family);
        let entries = self.entries.lock().ok()?;
        let (generation, at, value) = entries.map.get(&(family, key.to_string()))?;
        if *generation != current || at.elapsed() > MAX_AGE {
            return None;
        }
        value.downcast_ref::<T>().cloned()
    }

    /// Keeps `value`, read under `generation`; dropped when the family changed meanwhile.
    pub fn put<T: Send + Sync + 'static>(
        &self,
        family: Family,
        key: String,
        generation: u64,
        value: T,
    ) {
        if generation != self.generation(family) {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.map.len() >= entries.sweep_at.max(SWEEP_FROM) {
            self.sweep(&mut entries);
        }
        if entries.map.len() >= MAX_ENTRIES {
            entries.map.clear();
        }
        let now = Instant::now();
        entries
            .map
            .insert((family, key), (generation, now, Arc::new(value)));
    }

    /// Drops the entries no `get` would serve: of a family that changed since, or too old.
    /// Reads of rows nobody reads again (a new connection's, answered once) would otherwise
    /// stay until the bound clears everything.
    fn sweep(&self, entries: &mut Entries) {
        let now = Instant::now();
        entries.map.retain(|(family, _), (generation, at, _)| {
            *generation == self.generation(*family) && now.duration_since(*at) <= MAX_AGE
        });
        entries.sweep_at = 2 * entries.map.len();
    }

    pub fn changed(&self, family: Family) {
        self.slot(family).fetch_add(1, Ordering::SeqCst);
    }

    pub fn changed_all(&self) {
        for family in FAMILIES {
            self.changed(family);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_before_a_change_is_never_served_after_it() {
        let cache = ReadCache::default();
        let before = cache.generation(Family::ApiKeys);
        cache.put(Family::ApiKeys, "k".into(), before, 1u32);
        assert_eq!(cache.get::<u32>(Family::ApiKeys, "k"), Some(1));
        cache.changed(Family::ApiKeys);
        assert_eq!(cache.get::<u32>(Family::ApiKeys, "k"), None);
        // A read that began before the change and finishes after it is not kept.
        cache.put(Family::ApiKeys, "k".into(), before, 1u32);
        assert_eq!(cache.get::<u32>(Family::ApiKeys, "k"), None);
    }

    #[test]
    fn families_change_on_their_own_and_all_together() {
        let cache = ReadCache::default();
        for (i, f) in FAMILIES.into_iter().enumerate() {
            cache.put(f, "k".into(), cache.generation(f), i);
        }
        cache.changed(Family::Connections);
        assert_eq!(cache.get::<usize>(Family::ApiKeys, "k"), Some(0));
        assert_eq!(cache.get::<usize>(Family::Connections, "k"), None);
        cache.changed_all();
        for f in FAMILIES {
            assert_eq!(cache.get::<usize>(f, "k"), None);
        }
    }

    #[test]
    fn stale_entries_go_before_the_cache_grows_past_the_sweep_size() {
        let cache = ReadCache::default();
        let fill = |cache: &ReadCache, family: Family, n: usize| {
            for i in 0..n {
                cache.put(
                    family,
                    format!("{family:?}-{i}"),
                    cache.generation(family),
                    i,
                );
            }
        };
        let len = |cache: &ReadCache| cache.entries.lock().expect("lock").map.len();
        fill(&cache, Family::Connections, SWEEP_FROM - 10);
        fill(&cache, Family::ApiKeys, 10);
        cache.changed(Family::Connections);
        fill(&cache, Family::Connections, 1);
        // The connections read before the change went; the fresh API keys stayed.
        assert_eq!(len(&cache), 11);
        assert_eq!(cache.get::<usize>(Family::ApiKeys, "ApiKeys-9"), Some(9));
        // Fresh entries are kept: the next sweep waits until the map has doubled.
        fill(&cache, Family::Gateways, 2 * SWEEP_FROM);
        assert_eq!(len(&cache), 11 + 2 * SWEEP_FROM);
        assert!(len(&cache) < MAX_ENTRIES);
    }

    #[test]
    fn a_value_of_another_type_is_a_miss() {
        let cache = ReadCache::default();
        cache.put(Family::Gateways, "k".into(), 0, 1u8);
        assert_eq!(cache.get::<String>(Family::Gateways, "k"), None);
    }
}
