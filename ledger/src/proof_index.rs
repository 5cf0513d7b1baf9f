//! The proof index: the Merkle tree over the global log as `c2sp.org/tlog-tiles` tiles
//! ([`crate::merkle::tiles`]). Full tiles are persisted in the store, as events of the
//! `log-tiles-<level>` streams (revision n holds tile n, its 8,192 bytes as the payload), so
//! every backend keeps them without a schema of its own, and the log commits to its own
//! tiles. The right edge stays in memory, with a bounded set of full tiles at hand.
//!
//! A start reads the newest tiles (at most 255 per level), not the log: its work and memory
//! do not grow with the log. Proofs load the tiles they touch, O(log₂₅₆ n) of them.

use crate::envelope::{ExpectedRevision, ProposedEvent, StreamId};
use crate::merkle::tiles::{FullTile, TILE_WIDTH, TileHashes, Tiles, tile_bytes, tile_from_bytes, tile_root};
use crate::merkle::{ProofError, TreeHash, consistency_proof, inclusion_proof, root};
use crate::store::{EventStore, StoreError};
use std::sync::{Arc, RwLock};

/// Event type of a persisted tile.
pub const TILE_EVENT_TYPE: &str = "log.tile";
/// Full tiles kept at hand before the set is dropped and loaded again on demand: 24 KiB
/// each (8 KiB of hashes, 16 KiB of inner nodes), 12 MiB. A heap profile found 2,048 of
/// them to be 49 MiB, a sixth of the heap; a tile not at hand costs a proof one 8 KiB read
/// (p99 417 µs at 10 million events, BENCHMARKS.md).
pub const DEFAULT_TILES_AT_HAND: usize = 512;
/// A proof touches a few tiles per level; more loads than this for one answer is a bug.
const MAX_LOADS_PER_ANSWER: usize = 128;

/// The stream holding the full tiles of one level.
pub fn tile_stream(level: u32) -> StreamId {
    StreamId::new(format!("log-tiles-{level}")).unwrap_or_else(|_| unreachable!("a valid stream id"))
}

/// Whether `stream` holds tiles (of any level).
pub fn is_tile_stream(stream: &StreamId) -> bool {
    stream.as_str().strip_prefix("log-tiles-").is_some_and(|level| level.parse::<u32>().is_ok())
}

/// Why a proof cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("the log is indexed up to {indexed} events; {wanted} asked for (retry shortly)")]
    NotYetIndexed { indexed: u64, wanted: u64 },
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("the proof index cannot read its tiles: {0}")]
    Tiles(String),
}

/// What a start read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Leaves the persisted tiles cover; the log is read from here on.
    pub size: u64,
    /// Tiles read (or rebuilt) to restore the right edge.
    pub tiles_read: u64,
}

/// Proofs over the log as far as the publisher has read it.
#[derive(Clone)]
pub struct LogIndex {
    tiles: Arc<RwLock<Tiles>>,
    /// Where full tiles are persisted; `None` keeps every tile in memory (tests, tools).
    store: Option<Arc<dyn EventStore>>,
    at_hand: usize,
}

impl Default for LogIndex {
    fn default() -> Self {
        Self { tiles: Arc::default(), store: None, at_hand: usize::MAX }
    }
}

impl LogIndex {
    /// An index whose full tiles live in `store`.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self { tiles: Arc::default(), store: Some(store), at_hand: DEFAULT_TILES_AT_HAND }
    }

    /// How many full tiles to keep at hand (at least 16).
    #[must_use]
    pub fn with_tiles_at_hand(mut self, tiles: usize) -> Self {
        self.at_hand = tiles.max(16);
        self
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tiles> {
        self.tiles.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tiles> {
        self.tiles.write().unwrap_or_else(|e| e.into_inner())
    }

    /// How many events are indexed.
    pub fn size(&self) -> u64 {
        self.read().size()
    }

    /// Full tiles at hand now.
    pub fn tiles_at_hand(&self) -> usize {
        self.read().at_hand()
    }

    /// Whether full tile (`level`, `index`) is at hand now.
    pub fn holds_tile(&self, level: u32, index: u64) -> bool {
        self.read().holds(level, index)
    }

    /// Starts again from the persisted tiles: the size they cover and the right edge above
    /// level 0, rebuilding (and persisting) any upper tile a crash left unwritten. Without a
    /// store, keeps what it has.
    ///
    /// # Errors
    /// A store failure, or a tile that is not 8,192 bytes.
    pub async fn restore(&self) -> Result<Restored, StoreError> {
        let Some(store) = &self.store else { return Ok(Restored { size: self.size(), tiles_read: 0 }) };
        let full = store.stream_revision(&tile_stream(0)).await?.map_or(0, |r| r + 1);
        let size = full * TILE_WIDTH as u64;
        let mut upper = Vec::new();
        let mut at_hand = Vec::new();
        let mut tiles_read = 0;
        for level in 1..64 {
            let below = Tiles::full_tiles(size, level - 1);
            if below == 0 {
                break;
            }
            let first = below - below % TILE_WIDTH as u64;
            let loaded = self.load_range(&**store, level - 1, first, below - first).await?;
            tiles_read += loaded.len() as u64;
            upper.push(loaded.iter().map(|t| tile_root(t)).collect());
            at_hand.extend(loaded.into_iter().enumerate().map(|(i, t)| (level - 1, first + i as u64, t)));
        }
        let mut tiles = Tiles::restored(size, upper).map_err(StoreError::Corrupt)?;
        for (level, index, hashes) in at_hand {
            tiles.insert(level, index, hashes);
        }
        *self.write() = tiles;
        Ok(Restored { size, tiles_read })
    }

    /// Tiles `first..first + count` of `level`, rebuilding upper ones the store lacks.
    async fn load_range(
        &self,
        store: &dyn EventStore,
        level: u32,
        first: u64,
        count: u64,
    ) -> Result<Vec<TileHashes>, StoreError> {
        let mut out = Vec::with_capacity(count as usize);
        let stored = store.read_stream(&tile_stream(level), first, count as usize).await?;
        for event in &stored {
            out.push(tile_of_event(&event.payload)?);
        }
        while (out.len() as u64) < count {
            let index = first + out.len() as u64;
            if level == 0 {
                return Err(StoreError::Corrupt(format!("tile 0/{index} is missing from the store")));
            }
            // Written after the tiles below it: a crash can leave it out. Rebuild and keep it.
            let below =
                Box::pin(self.load_range(store, level - 1, index * TILE_WIDTH as u64, TILE_WIDTH as u64)).await?;
            let hashes: TileHashes = below.iter().map(|t| tile_root(t)).collect::<Vec<_>>().into();
            self.persist_one(store, &FullTile { level, index, hashes: hashes.clone() }).await?;
            out.push(hashes);
        }
        Ok(out)
    }

    /// Appends a leaf; returns the full tiles it completed, which the caller persists
    /// with [`LogIndex::persist`].
    pub fn push(&self, leaf: TreeHash) -> Vec<FullTile> {
        let mut tiles = self.write();
        let done = tiles.push(leaf);
        make_room(&mut tiles, self.at_hand);
        done
    }

    /// Persists full tiles in order. A tile another replica wrote first must be equal.
    ///
    /// # Errors
    /// A store failure, or [`StoreError::Corrupt`] when a stored tile differs.
    pub async fn persist(&self, tiles: &[FullTile]) -> Result<(), StoreError> {
        let Some(store) = &self.store else { return Ok(()) };
        for tile in tiles {
            self.persist_one(&**store, tile).await?;
        }
        Ok(())
    }

    async fn persist_one(&self, store: &dyn EventStore, tile: &FullTile) -> Result<(), StoreError> {
        let stream = tile_stream(tile.level);
        let expected = tile.index.checked_sub(1).map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        let event = ProposedEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: TILE_EVENT_TYPE.to_owned(),
            recorded_at_micros: chrono::Utc::now().timestamp_micros(),
            payload: tile_bytes(&tile.hashes),
        };
        match store.append(&stream, expected, vec![event]).await {
            Ok(_) => Ok(()),
            Err(StoreError::WrongExpectedRevision { .. }) => {
                let stored = store.read_stream(&stream, tile.index, 1).await?;
                match stored.first() {
                    Some(e) if tile_of_event(&e.payload)? == tile.hashes => Ok(()),
                    Some(_) => Err(StoreError::Corrupt(format!(
                        "tile {}/{} in the store differs from the one computed from the log",
                        tile.level, tile.index
                    ))),
                    None => Err(StoreError::Corrupt(format!(
                        "tile {}/{} cannot follow the stored tiles",
                        tile.level, tile.index
                    ))),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Puts tile (`level`, `index`) at hand from the store.
    async fn load(&self, level: u32, index: u64) -> Result<(), IndexError> {
        let Some(store) = &self.store else {
            return Err(IndexError::Tiles(format!("tile {level}/{index} is not in memory")));
        };
        let tile = self
            .load_range(&**store, level, index, 1)
            .await
            .map_err(|e| IndexError::Tiles(e.to_string()))?
            .pop()
            .ok_or_else(|| IndexError::Tiles(format!("tile {level}/{index} is missing")))?;
        let mut tiles = self.write();
        make_room(&mut tiles, self.at_hand.saturating_sub(1));
        tiles.insert(level, index, tile);
        Ok(())
    }

    /// Runs `f` over the tiles of a tree of at least `size` leaves, loading the tiles it
    /// lacks.
    async fn with_tiles<T>(&self, size: u64, f: impl Fn(&Tiles) -> Result<T, ProofError>) -> Result<T, IndexError> {
        for _ in 0..MAX_LOADS_PER_ANSWER {
            let missing = {
                let tiles = self.read();
                if tiles.size() < size {
                    return Err(IndexError::NotYetIndexed { indexed: tiles.size(), wanted: size });
                }
                match f(&tiles) {
                    Err(ProofError::MissingNode { level, index }) => Tiles::tile_of(level, index),
                    other => return Ok(other?),
                }
            };
            self.load(missing.0, missing.1).await?;
        }
        Err(IndexError::Tiles("a proof kept asking for tiles".into()))
    }

    /// The root of the first `size` events.
    ///
    /// # Errors
    /// [`IndexError::NotYetIndexed`] while the publisher is catching up; a tile that
    /// cannot be read.
    pub async fn root(&self, size: u64) -> Result<TreeHash, IndexError> {
        self.with_tiles(size, |t| root(t, size)).await
    }

    /// The inclusion proof of event `position` in the tree of `size` events.
    ///
    /// # Errors
    /// [`IndexError`] for an index out of range or a size not yet indexed.
    pub async fn inclusion(&self, position: u64, size: u64) -> Result<Vec<TreeHash>, IndexError> {
        self.with_tiles(size, |t| inclusion_proof(t, position, size)).await
    }

    /// The consistency proof between trees of `old` and `new` events.
    ///
    /// # Errors
    /// [`IndexError`] for bad sizes or a size not yet indexed.
    pub async fn consistency(&self, old: u64, new: u64) -> Result<Vec<TreeHash>, IndexError> {
        self.with_tiles(new, |t| consistency_proof(t, old, new)).await
    }

    /// A tile as `c2sp.org/tlog-tiles` serves it: full, or the first `width` hashes of the
    /// current partial tile; `None` when the index does not have it (yet).
    ///
    /// # Errors
    /// A tile that cannot be read.
    pub async fn tile(&self, level: u32, index: u64, width: Option<usize>) -> Result<Option<Vec<u8>>, IndexError> {
        for _ in 0..2 {
            {
                let tiles = self.read();
                let full = Tiles::full_tiles(tiles.size(), level);
                match width {
                    None if index >= full => return Ok(None),
                    None => {
                        if let Some(hashes) = tiles.full_tile(level, index) {
                            return Ok(Some(tile_bytes(hashes)));
                        }
                    }
                    // A partial tile: a prefix of the current edge, or of a full tile since.
                    Some(w) if index == full => {
                        return Ok(tiles.partial(level).get(..w).map(tile_bytes));
                    }
                    Some(_) if index > full => return Ok(None),
                    Some(w) => {
                        if let Some(hashes) = tiles.full_tile(level, index) {
                            return Ok(Some(tile_bytes(&hashes[..w.min(hashes.len())])));
                        }
                    }
                }
            }
            self.load(level, index).await?;
        }
        Ok(None)
    }
}

fn tile_of_event(payload: &[u8]) -> Result<TileHashes, StoreError> {
    let hashes = tile_from_bytes(payload).map_err(StoreError::Corrupt)?;
    if hashes.len() != TILE_WIDTH {
        return Err(StoreError::Corrupt(format!("a stored tile of {} hashes", hashes.len())));
    }
    Ok(hashes.into())
}

/// Past `bound` tiles at hand, drops the level-0 tiles but the newest half of the bound,
/// and keeps the upper levels: most proofs share those, and recent events are the ones
/// asked about most. Everything goes only when that is not enough.
fn make_room(tiles: &mut Tiles, bound: usize) {
    if tiles.at_hand() <= bound {
        return;
    }
    let newest = tiles.size() / TILE_WIDTH as u64;
    let keep = (bound / 2) as u64;
    tiles.forget(|level, index| level > 0 || index + keep >= newest);
    if tiles.at_hand() > bound {
        tiles.forget(|_, _| false);
    }
}
