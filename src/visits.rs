//! `--visits`: a visit is a hit from a visitor who has not hit that URL within
//! `--visit-window`. A visitor is a keyed hash (SipHash-2-4, 128 bits) of the site's host, the
//! client's address (as the rate limiter sees it, `--trusted-proxies` included) and its
//! `User-Agent`, keyed with a random salt of the current UTC day. The salt lives in Redis
//! (`<prefix>:salt:<day>`, made once by whichever HitMe needs it first, expiring after 48 h),
//! so that every instance names a visitor alike, and once it is gone nobody can tell who a
//! visitor was. The only traces of a visitor are one key per (visitor, URL) and one per
//! (visitor, site), which expire at the end of the window; nothing else is stored.

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use siphasher::sip128::{Hasher128, SipHasher24};

use crate::store::{random_hex, HitStore, StoreError, Visitor};
use crate::time::clock::now_ms;

/// How long a salt is kept in Redis: today's and yesterday's stay, older ones go.
pub(crate) const SALT_TTL_SECS: u64 = 48 * 3600;

/// The longest `--visit-window`: a day, as a salt names visitors for one day.
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(86_400);

const DAY_MS: i64 = 86_400_000;

/// What names a hit's visitor, as read from its request: the client's address and its
/// `User-Agent`. Kept until the hit is applied, when the day's salt is at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sighting {
    pub client: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// Names visitors (the window is the store's, which sets each visitor key's expiry).
#[derive(Default)]
pub(crate) struct Visits {
    /// Today's salt once known: (UTC day, key).
    salt: Mutex<Option<(i64, [u8; 16])>>,
}

impl Visits {
    /// The visitor of a hit on `url` (of `host`) by `sighting`.
    pub(crate) fn visitor(
        &self,
        store: &dyn HitStore,
        host: &str,
        sighting: &Sighting,
        url: &str,
    ) -> Result<Visitor, StoreError> {
        let key = self.todays_salt(store)?;
        let mut hasher = SipHasher24::new_with_key(&key);
        hasher.write(host.as_bytes());
        hasher.write_u8(0);
        match sighting.client {
            Some(IpAddr::V4(v4)) => hasher.write(&v4.octets()),
            Some(IpAddr::V6(v6)) => hasher.write(&v6.octets()),
            None => {}
        }
        hasher.write_u8(0);
        hasher.write(sighting.user_agent.as_deref().unwrap_or("").as_bytes());
        hasher.write_u8(0);
        // The site's visitor is the same hash without the URL (its keys have a prefix of
        // their own, so the two never meet).
        let site = hasher.finish128().as_u128();
        hasher.write(url.as_bytes());
        Ok(Visitor {
            page: hasher.finish128().as_u128(),
            site,
        })
    }

    /// The salt of the current UTC day: kept in memory once read, made in Redis (or read from
    /// it, when another HitMe made it first) on the day's first hit.
    fn todays_salt(&self, store: &dyn HitStore) -> Result<[u8; 16], StoreError> {
        let day = now_ms().div_euclid(DAY_MS);
        let mut salt = self.salt.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((known, key)) = *salt {
            if known == day {
                return Ok(key);
            }
        }
        let proposed = random_hex()?;
        let agreed = store.day_salt(day, &proposed, SALT_TTL_SECS)?;
        let key = parse_hex(&agreed).ok_or_else(|| {
            StoreError::BadData(format!(
                "the salt of day {day} in Redis is not 32 hex digits; delete the key and HitMe makes a new one"
            ))
        })?;
        *salt = Some((day, key));
        Ok(key)
    }
}

fn parse_hex(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_are_random_hex_that_parses_back() {
        let (a, b) = (random_hex().unwrap(), random_hex().unwrap());
        assert_ne!(a, b);
        assert_eq!(parse_hex(&a).map(|k| k.len()), Some(16));
        assert_eq!(parse_hex("zz"), None);
        let visitor = Visitor { page: 255, site: 1 };
        assert_eq!(visitor.hex(), "000000000000000000000000000000ff");
        assert_eq!(visitor.site_hex(), "00000000000000000000000000000001");
    }
}
