//! Guessing customer links is rate-limited: an address that opened too many unknown links
//! lately is refused (429) for a while, whatever it asks next. Per instance, in memory: it only
//! slows guessing down, it never decides what a real link shows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Guesses {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Guesses {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, seen: Mutex::new(HashMap::new()) }
    }

    /// Is this address refused right now?
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&ip).is_some_and(|(since, n)| *n >= self.limit && since.elapsed() < self.window)
    }

    /// One more unknown link opened from this address.
    pub fn failed(&self, ip: IpAddr) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 100_000 {
            let window = self.window;
            seen.retain(|_, (since, _)| since.elapsed() < window);
        }
        let entry = seen.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_limit_until_the_window_passes() {
        let g = Guesses::new(3, Duration::from_millis(50));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..3 {
            assert!(!g.is_blocked(ip));
            g.failed(ip);
        }
        assert!(g.is_blocked(ip));
        assert!(!g.is_blocked(other));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!g.is_blocked(ip));
    }
}
