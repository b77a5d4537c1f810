//! Run IDs that name their own row.
//!
//! A run ID is a UUIDv7 whose time and counter bits are the run's row number (`seq`, the
//! `runs` table's rowid): `seq = unix_ms << 15 | counter`. So finding a run by its ID is a
//! rowid lookup, and scheduling a run inserts into the table alone, with no second B-tree for
//! the ID. That second B-tree cost about a tenth of the schedule throughput (BENCHMARKS.md).
//!
//! Layout (RFC 9562, "fixed bit-length dedicated counter"): 48 bits of Unix milliseconds, the
//! version, the counter's high 12 bits as `rand_a`, the variant, the counter's low 3 bits, then
//! 59 random bits, which keep IDs from two engines apart. The text sorts like `seq`.
//!
//! Runs stored before this scheme (schema 1) keep their IDs; they are numbered below
//! [`LEGACY_SEQ_END`] and found through a partial index on `id`.

/// Rows numbered below this hold runs whose IDs predate these IDs. Any ID minted here is far
/// above it (the clock alone puts it past 2^55). Written as a literal in the schema's partial
/// index and in the query that must match it.
pub const LEGACY_SEQ_END: i64 = 1_000_000_000_000;

const COUNTER_BITS: u32 = 15;

/// Hands out IDs in increasing `seq` order. The store mints under the same lock it sends the
/// insert with, so rows are committed in `seq` order, which the by-name index's watermark
/// relies on.
#[derive(Debug)]
pub struct Mint {
    last: i64,
}

impl Mint {
    /// Continues after `last`, the highest `seq` already stored.
    pub fn after(last: i64) -> Mint {
        Mint { last }
    }

    /// The next `(seq, id)`: the current millisecond if it is ahead, else one past the last
    /// (a burst of more than 32 768 a millisecond, or a clock stepped back, borrows from the
    /// next millisecond rather than reusing a number).
    pub fn next_id(&mut self) -> (i64, String) {
        let now = crate::api::now_ms().clamp(0, (1 << 48) - 1) << COUNTER_BITS;
        self.last = now.max(self.last + 1);
        (self.last, format(self.last))
    }
}

fn format(seq: i64) -> String {
    let ms = (seq >> COUNTER_BITS) as u64;
    let counter = (seq & ((1 << COUNTER_BITS) - 1)) as u16;
    let random = uuid::Uuid::new_v4().as_u64_pair().1;
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = 0x70 | (counter >> 11) as u8;
    b[7] = (counter >> 3) as u8;
    b[8] = 0x80 | (((counter as u8) & 7) << 3) | (((random >> 56) as u8) & 7);
    b[9..].copy_from_slice(&random.to_be_bytes()[1..]);
    uuid::Uuid::from_bytes(b).hyphenated().to_string()
}

/// The `seq` an ID minted here stands for, or `None` for anything that is not a UUIDv7 (an ID
/// from before, or junk). A legacy UUIDv7 also yields a number; the caller checks the row's ID.
pub fn seq_of(id: &str) -> Option<i64> {
    let u = uuid::Uuid::try_parse(id).ok()?;
    if u.get_version_num() != 7 {
        return None;
    }
    let b = u.as_bytes();
    let mut ms = [0u8; 8];
    ms[2..].copy_from_slice(&b[..6]);
    let counter =
        (u16::from(b[6] & 0x0f) << 11) | (u16::from(b[7]) << 3) | u16::from((b[8] >> 3) & 7);
    Some((i64::from_be_bytes(ms) << COUNTER_BITS) | i64::from(counter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_to_their_seq_and_sort_like_it() {
        let mut mint = Mint::after(0);
        let minted: Vec<(i64, String)> = (0..50_000).map(|_| mint.next_id()).collect();
        for (seq, id) in &minted {
            assert_eq!(seq_of(id), Some(*seq), "{id}");
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 7);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
            assert!(*seq > LEGACY_SEQ_END);
        }
        // More than one millisecond's counter: still strictly increasing, in text too.
        for pair in minted.windows(2) {
            assert!(pair[0].0 < pair[1].0);
            assert!(pair[0].1 < pair[1].1, "{} then {}", pair[0].1, pair[1].1);
        }
    }

    #[test]
    fn a_mint_continues_past_what_is_stored_even_if_the_clock_is_behind() {
        let far = (crate::api::now_ms() + 3_600_000) << COUNTER_BITS;
        let mut mint = Mint::after(far);
        assert_eq!(mint.next_id().0, far + 1);
    }

    #[test]
    fn other_ids_have_no_seq() {
        assert_eq!(seq_of("x"), None);
        assert_eq!(seq_of(&uuid::Uuid::new_v4().to_string()), None);
        assert!(seq_of(&uuid::Uuid::now_v7().to_string()).is_some());
    }
}
