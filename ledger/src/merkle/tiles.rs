//! The Merkle tree as `c2sp.org/tlog-tiles` tiles: a *tile* at level `L` holds 256
//! consecutive hashes of complete subtrees of height `8·L` (level 0: leaf hashes). Full tiles
//! never change and are persisted; the right edge (at most 255 hashes per level) stays in
//! memory. Any complete subtree comes from one tile: its hashes at the tile level below it,
//! hashed up at most 7 times. So proofs need O(log₂₅₆ n) tiles and memory stays flat.
//!
//! Pure: no I/O. The publisher ([`crate::publisher`]) persists and loads tiles.

use super::hashing::{TreeHash, node_hash};
use super::proof::{NodeSource, ProofError};
use std::collections::HashMap;
use std::sync::Arc;

/// Hashes in a full tile.
pub const TILE_WIDTH: usize = 256;
/// Tree levels one tile level spans.
pub const TILE_HEIGHT: u32 = 8;

/// A full tile's hashes, in order.
pub type TileHashes = Arc<[TreeHash]>;

/// The `c2sp.org/tlog-tiles` path of a tile: `tile/<L>/<N>` with `N` in `x`-prefixed
/// 3-digit groups, and `.p/<W>` for a partial tile of width `W`.
pub fn tile_path(level: u32, index: u64, partial_width: Option<usize>) -> String {
    let digits = index.to_string();
    let padded = format!("{}{digits}", "0".repeat((3 - digits.len() % 3) % 3));
    let groups: Vec<&str> = padded.as_bytes().chunks(3).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    let (last, rest) = groups.split_last().map_or(("000", &[][..]), |(l, r)| (*l, r));
    let mut path = format!("tile/{level}/");
    for group in rest {
        path.push('x');
        path.push_str(group);
        path.push('/');
    }
    path.push_str(last);
    if let Some(width) = partial_width {
        path.push_str(&format!(".p/{width}"));
    }
    path
}

/// Parses a tile path (see [`tile_path`]) into level, index and partial width.
pub fn parse_tile_path(path: &str) -> Option<(u32, u64, Option<usize>)> {
    let rest = path.strip_prefix("tile/")?;
    let (level, rest) = rest.split_once('/')?;
    if level.is_empty() || (level.len() > 1 && level.starts_with('0')) {
        return None;
    }
    let level: u32 = level.parse().ok().filter(|l| *l <= 63)?;
    let (index_part, width) = match rest.split_once(".p/") {
        Some((index, width)) => {
            let w: usize = width.parse().ok().filter(|w| (1..TILE_WIDTH).contains(w))?;
            (w.to_string() == width).then_some(())?;
            (index, Some(w))
        }
        None => (rest, None),
    };
    let groups: Vec<&str> = index_part.split('/').collect();
    let (last, prefix) = groups.split_last()?;
    let mut digits = String::new();
    for group in prefix {
        let g = group.strip_prefix('x')?;
        (g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit())).then_some(())?;
        digits.push_str(g);
    }
    (last.len() == 3 && last.bytes().all(|b| b.is_ascii_digit())).then_some(())?;
    digits.push_str(last);
    let index: u64 = digits.parse().ok()?;
    (tile_path(level, index, width) == path).then_some((level, index, width))
}

/// The root of a power-of-two run of hashes.
fn run_root(hashes: &[TreeHash]) -> TreeHash {
    match hashes.len() {
        0 => super::hashing::empty_root(),
        1 => hashes[0],
        n => node_hash(&run_root(&hashes[..n / 2]), &run_root(&hashes[n / 2..])),
    }
}

/// The hash a full tile contributes to the level above: the root of its 256 hashes.
pub fn tile_root(hashes: &[TreeHash]) -> TreeHash {
    run_root(hashes)
}

/// A tile's bytes: its hashes concatenated.
pub fn tile_bytes(hashes: &[TreeHash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

/// # Errors
/// When `bytes` are not a whole number of hashes.
pub fn tile_from_bytes(bytes: &[u8]) -> Result<Vec<TreeHash>, String> {
    if !bytes.len().is_multiple_of(32) || bytes.len() > TILE_WIDTH * 32 {
        return Err(format!("a tile of {} bytes", bytes.len()));
    }
    Ok(bytes.chunks_exact(32).filter_map(|c| TreeHash::try_from_slice(c).ok()).collect())
}

/// Every node inside one tile, full or partial: its hashes and the complete nodes above
/// them (up to the tile's root once full), grown one hash at a time, so that any subtree a
/// tile holds is one lookup instead of up to 255 hashes per proof step. 16 KiB when full.
/// The same structure as the in-memory tree, over one tile's hashes.
type TileRows = super::proof::MemoryNodes;

fn tile_rows(hashes: &[TreeHash]) -> TileRows {
    let mut rows = TileRows::new();
    hashes.iter().for_each(|h| rows.push(*h));
    rows
}

/// A full tile at hand: its hashes (to serve and persist) and every node inside it.
#[derive(Debug)]
struct TileNodes {
    rows: TileRows,
    hashes: TileHashes,
}

/// A full tile that a pushed leaf completed, to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullTile {
    pub level: u32,
    pub index: u64,
    pub hashes: TileHashes,
}

/// The tree's right edge and the full tiles at hand. Full tiles not at hand make
/// [`NodeSource::subtree`] fail with [`ProofError::MissingNode`]; see [`Tiles::tile_of`].
#[derive(Debug, Clone, Default)]
pub struct Tiles {
    size: u64,
    /// Per tile level, the partial tile after the last full one (0..=255 hashes).
    edge: Vec<TileRows>,
    /// Full tiles at hand, by (level, index).
    full: HashMap<(u32, u64), Arc<TileNodes>>,
}

impl Tiles {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Full tiles at `level` in a tree of `size` leaves.
    pub fn full_tiles(size: u64, level: u32) -> u64 {
        let shift = TILE_HEIGHT * (level + 1);
        if shift >= 64 { 0 } else { size >> shift }
    }

    /// A tree of `size` leaves (a multiple of 256) whose right edge above level 0 is
    /// `edge[L]` for level `L` ≥ 1 (as loaded from persisted tiles).
    ///
    /// # Errors
    /// When an edge's width does not fit `size`.
    pub fn restored(size: u64, upper_edge: Vec<Vec<TreeHash>>) -> Result<Self, String> {
        if !size.is_multiple_of(TILE_WIDTH as u64) {
            return Err(format!("a restored tree's size is a whole number of tiles, not {size}"));
        }
        let mut edge = vec![Vec::new()];
        edge.extend(upper_edge);
        let levels = (1..64).take_while(|l| Self::full_tiles(size, l - 1) > 0).count() + 1;
        edge.resize(edge.len().max(levels), Vec::new());
        for (level, hashes) in edge.iter().enumerate().skip(1) {
            let wanted = Self::full_tiles(size, level as u32 - 1) % TILE_WIDTH as u64;
            if hashes.len() as u64 != wanted {
                return Err(format!("tile level {level} edge holds {} hashes; the size wants {wanted}", hashes.len()));
            }
        }
        let edge = edge.iter().map(|hashes| tile_rows(hashes)).collect();
        Ok(Self { size, edge, full: HashMap::new() })
    }

    /// Appends a leaf hash; returns the full tiles it completed, lowest level first. They
    /// are kept at hand until [`Tiles::forget`].
    pub fn push(&mut self, leaf: TreeHash) -> Vec<FullTile> {
        let mut done = Vec::new();
        let mut hash = leaf;
        let mut level = 0usize;
        loop {
            if self.edge.len() == level {
                self.edge.push(TileRows::default());
            }
            self.edge[level].push(hash);
            if self.edge[level].leaves().len() < TILE_WIDTH {
                break;
            }
            let rows = std::mem::take(&mut self.edge[level]);
            let hashes: TileHashes = rows.leaves().into();
            let index = Self::full_tiles(self.size + 1, level as u32) - 1;
            hash = rows.subtree(TILE_HEIGHT, 0).unwrap_or_else(|_| tile_root(&hashes));
            self.full.insert((level as u32, index), Arc::new(TileNodes { rows, hashes: hashes.clone() }));
            done.push(FullTile { level: level as u32, index, hashes });
            level += 1;
        }
        self.size += 1;
        done
    }

    /// Puts a persisted full tile at hand.
    pub fn insert(&mut self, level: u32, index: u64, hashes: TileHashes) {
        self.full.insert((level, index), Arc::new(TileNodes { rows: tile_rows(&hashes), hashes }));
    }

    /// Drops full tiles from hand, keeping those `keep` says to.
    pub fn forget(&mut self, keep: impl Fn(u32, u64) -> bool) {
        self.full.retain(|(level, index), _| keep(*level, *index));
    }

    /// How many full tiles are at hand.
    pub fn at_hand(&self) -> usize {
        self.full.len()
    }

    /// Whether full tile (`level`, `index`) is at hand.
    pub fn holds(&self, level: u32, index: u64) -> bool {
        self.full.contains_key(&(level, index))
    }

    /// The tile (level, index) that holds the subtree at tree `level`, `index`.
    pub fn tile_of(level: u32, index: u64) -> (u32, u64) {
        let tile_level = level / TILE_HEIGHT;
        let first = index << (level % TILE_HEIGHT);
        (tile_level, first / TILE_WIDTH as u64)
    }

    /// The right edge at tile `level`: the partial tile of the current size.
    pub fn partial(&self, level: u32) -> &[TreeHash] {
        self.edge.get(level as usize).map_or(&[], TileRows::leaves)
    }

    /// A full tile, if at hand.
    pub fn full_tile(&self, level: u32, index: u64) -> Option<&TileHashes> {
        self.full.get(&(level, index)).map(|t| &t.hashes)
    }
}

impl NodeSource for Tiles {
    fn subtree(&self, level: u32, index: u64) -> Result<TreeHash, ProofError> {
        let missing = ProofError::MissingNode { level, index };
        let end = index.checked_add(1).and_then(|i| i.checked_mul(1u64.checked_shl(level)?)).ok_or(missing.clone())?;
        if end > self.size {
            return Err(missing);
        }
        let (tile_level, tile_index) = Self::tile_of(level, index);
        let first = (index << (level % TILE_HEIGHT)) as usize % TILE_WIDTH;
        let height = (level % TILE_HEIGHT) as usize;
        let rows = if tile_index < Self::full_tiles(self.size, tile_level) {
            &self.full.get(&(tile_level, tile_index)).ok_or(missing.clone())?.rows
        } else {
            self.edge.get(tile_level as usize).ok_or(missing.clone())?
        };
        rows.subtree(height as u32, (first >> height) as u64).map_err(|_| missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MemoryNodes, consistency_proof, inclusion_proof, leaf_hash, root};

    #[test]
    fn tile_paths_follow_the_spec() {
        assert_eq!(tile_path(0, 1_234_067, None), "tile/0/x001/x234/067");
        assert_eq!(tile_path(1, 5, Some(17)), "tile/1/005.p/17");
        assert_eq!(tile_path(2, 0, None), "tile/2/000");
        assert_eq!(tile_path(0, 1000, None), "tile/0/x001/000");
        for path in ["tile/0/x001/x234/067", "tile/1/005.p/17", "tile/2/000", "tile/0/x001/000"] {
            let (l, n, w) = parse_tile_path(path).unwrap();
            assert_eq!(tile_path(l, n, w), path);
        }
        for bad in [
            "tile/00/000",
            "tile/0/1",
            "tile/0/x1/000",
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/64/000",
            "tile/0/001/002",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad}");
        }
    }

    /// Every proof and root from tiles equals the one from all subtree hashes, for sizes
    /// across several tile levels, with full tiles only at hand when asked for.
    #[test]
    fn proofs_from_tiles_equal_proofs_from_every_node() {
        let n = 100_000u64;
        let mut all = MemoryNodes::new();
        let mut tiles = Tiles::default();
        let mut persisted: HashMap<(u32, u64), TileHashes> = HashMap::new();
        for i in 0..n {
            let leaf = leaf_hash(&i.to_be_bytes());
            all.push(leaf);
            for tile in tiles.push(leaf) {
                persisted.insert((tile.level, tile.index), tile.hashes);
            }
        }
        assert_eq!(persisted.keys().filter(|(l, _)| *l == 0).count(), 390);
        assert_eq!(persisted.keys().filter(|(l, _)| *l == 1).count(), 1);
        assert_eq!((tiles.partial(0).len(), tiles.partial(1).len(), tiles.partial(2).len()), (160, 134, 1));
        tiles.forget(|_, _| false);
        // Load on demand, as the index does.
        let with_loading = |tiles: &mut Tiles, f: &dyn Fn(&Tiles) -> Result<Vec<TreeHash>, ProofError>| loop {
            match f(tiles) {
                Err(ProofError::MissingNode { level, index }) => {
                    let (l, t) = Tiles::tile_of(level, index);
                    tiles.insert(l, t, persisted[&(l, t)].clone());
                }
                other => return other.unwrap(),
            }
        };
        // Spread over the whole range by multiplying with large primes (no dependency).
        let spread = |k: u64, prime: u64, below: u64| k.wrapping_mul(prime) % below;
        for k in 1..=300u64 {
            let size = 1 + spread(k, 2_654_435_761, n);
            let index = spread(k, 40_503, size);
            let old = 1 + spread(k, 97_531, size);
            assert_eq!(
                with_loading(&mut tiles, &|t| inclusion_proof(t, index, size)),
                inclusion_proof(&all, index, size).unwrap()
            );
            assert_eq!(
                with_loading(&mut tiles, &|t| consistency_proof(t, old, size)),
                consistency_proof(&all, old, size).unwrap()
            );
            assert_eq!(with_loading(&mut tiles, &|t| root(t, size).map(|r| vec![r])), vec![root(&all, size).unwrap()]);
        }
        // A restored edge (from the full tiles) continues as if never stopped.
        let size = 256 * 270u64;
        let mut again = MemoryNodes::new();
        for i in 0..size {
            again.push(leaf_hash(&i.to_be_bytes()));
        }
        let upper =
            vec![(256..270).map(|t| tile_root(&persisted[&(0, t)])).collect(), vec![tile_root(&persisted[&(1, 0)])]];
        let mut restored = Tiles::restored(size, upper.clone()).unwrap();
        for i in size..size + 10 {
            restored.push(leaf_hash(&i.to_be_bytes()));
            again.push(leaf_hash(&i.to_be_bytes()));
        }
        assert_eq!(root(&restored, size + 10).unwrap(), root(&again, size + 10).unwrap());
        assert!(Tiles::restored(size, upper[..1].to_vec()).is_err(), "an edge that does not fit the size");
        assert!(Tiles::restored(size + 1, upper).is_err(), "a size that is not whole tiles");
    }
}
