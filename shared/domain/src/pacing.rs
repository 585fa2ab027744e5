//! Send pacing: a token bucket in its GCRA form (one number per bucket, the "theoretical
//! arrival time"), so that a bucket shared by concurrent senders is one DynamoDB item
//! changed with one conditional write per batch.
//!
//! A sender reserves slots for the messages it holds: message `i` of a reservation is due
//! at `start + i * interval`. After an idle spell a bucket lets a burst through at once (a
//! fifth of a second of traffic), then holds sends to the rate.

use std::time::Duration;

/// Meta's default throughput per phone number, and its highest.
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 80;
pub const MAX_MESSAGES_PER_SECOND: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    per_second: u32,
}

impl Rate {
    /// `per_second` clamped to 1 ..= 1,000.
    pub fn per_second(per_second: u32) -> Self {
        Self { per_second: per_second.clamp(1, MAX_MESSAGES_PER_SECOND) }
    }

    pub fn get(self) -> u32 {
        self.per_second
    }

    /// Time between two sends, in microseconds.
    pub fn interval_us(self) -> i64 {
        1_000_000 / i64::from(self.per_second)
    }

    /// How far behind "now" an idle bucket's clock may lag: the burst it allows.
    pub fn burst_us(self) -> i64 {
        (i64::from(self.per_second) / 5).max(1) * self.interval_us()
    }
}

/// Slots for `count` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// When the first message is due (microseconds since the epoch).
    pub start_us: i64,
    pub interval_us: i64,
    pub count: usize,
}

impl Reservation {
    pub fn due_us(&self, index: usize) -> i64 {
        self.start_us + self.interval_us * index as i64
    }

    /// The later of two reservations' slots for each message (phone number and tenant).
    pub fn combine(self, other: Reservation) -> Reservation {
        Reservation {
            start_us: self.start_us.max(other.start_us),
            interval_us: self.interval_us.max(other.interval_us),
            count: self.count,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write `new_tat` (on the condition that the bucket still holds what was read).
    Reserve { new_tat: i64, reservation: Reservation },
    /// The bucket is booked further ahead than the caller will wait: try again after this.
    Busy(Duration),
}

/// Reserves `count` slots in a bucket whose clock reads `tat` (None: never used).
pub fn reserve(
    rate: Rate,
    tat: Option<i64>,
    now_us: i64,
    count: usize,
    max_wait: Duration,
) -> Decision {
    let interval = rate.interval_us();
    let base = tat.unwrap_or(i64::MIN).max(now_us - rate.burst_us());
    let first_due = base.max(now_us);
    let wait = first_due - now_us;
    if wait > max_wait.as_micros() as i64 {
        return Decision::Busy(Duration::from_micros(
            (wait - max_wait.as_micros() as i64 / 2).max(0) as u64,
        ));
    }
    let reservation = Reservation { start_us: base, interval_us: interval, count };
    Decision::Reserve { new_tat: base + interval * count as i64, reservation }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the bucket's state: slots are one interval apart, none is before the
        /// bucket's clock or further back than the burst allows, the clock moves past the
        /// last slot, and "busy" means the first slot is beyond the wait.
        #[test]
        fn reservations_keep_the_rate_and_the_wait(
            per_second in 1u32..=1000,
            behind_or_ahead_us in -30_000_000i64..30_000_000,
            idle in any::<bool>(),
            count in 1usize..=10,
            wait_ms in 0u64..10_000,
        ) {
            let rate = Rate::per_second(per_second);
            let now = 1_800_000_000_000_000i64;
            let tat = (!idle).then_some(now + behind_or_ahead_us);
            let max_wait = Duration::from_millis(wait_ms);
            match reserve(rate, tat, now, count, max_wait) {
                Decision::Reserve { new_tat, reservation } => {
                    prop_assert_eq!(reservation.interval_us, rate.interval_us());
                    prop_assert!(reservation.start_us >= now - rate.burst_us());
                    if let Some(tat) = tat {
                        prop_assert!(reservation.start_us >= tat);
                    }
                    prop_assert!(reservation.start_us.max(now) - now <= max_wait.as_micros() as i64);
                    prop_assert_eq!(new_tat, reservation.due_us(count - 1) + rate.interval_us());
                }
                Decision::Busy(after) => {
                    let first = tat.unwrap_or(i64::MIN).max(now - rate.burst_us()).max(now);
                    prop_assert!(first - now > max_wait.as_micros() as i64);
                    prop_assert!(after.as_micros() as i64 <= first - now, "comes back no later than due");
                }
            }
        }
    }

    const WAIT: Duration = Duration::from_secs(5);

    /// Drives one bucket with batches of `batch` as fast as it allows and counts how many
    /// messages fall due in each whole second.
    fn due_per_second(rate: Rate, batch: usize, seconds: i64) -> Vec<usize> {
        let mut tat = None;
        let mut now = 0;
        let mut due = Vec::new();
        while now < seconds * 1_000_000 {
            match reserve(rate, tat, now, batch, WAIT) {
                Decision::Reserve { new_tat, reservation } => {
                    tat = Some(new_tat);
                    due.extend((0..batch).map(|i| reservation.due_us(i).max(now)));
                    // The sender waits until its last message is due before it asks again.
                    now = now.max(reservation.due_us(batch - 1)) + 1;
                }
                Decision::Busy(after) => now += after.as_micros() as i64,
            }
        }
        (0..seconds).map(|s| due.iter().filter(|t| **t / 1_000_000 == s).count()).collect()
    }

    #[test]
    fn a_saturated_bucket_holds_its_rate_after_the_first_burst() {
        for per_second in [80, 1000] {
            let counts = due_per_second(Rate::per_second(per_second), 10, 12);
            let burst = (per_second / 5) as usize;
            assert!(counts[0] <= per_second as usize + burst, "{per_second}: {counts:?}");
            for (second, count) in counts.iter().enumerate().skip(1).take(10) {
                let limit = per_second as usize;
                assert!(count.abs_diff(limit) <= 10, "{per_second}/s, second {second}: {count}");
            }
        }
    }

    #[test]
    fn an_idle_bucket_lets_a_burst_through_at_once() {
        let rate = Rate::per_second(80);
        let Decision::Reserve { reservation, .. } = reserve(rate, Some(0), 10_000_000, 10, WAIT)
        else {
            panic!("idle bucket")
        };
        assert!(reservation.due_us(9) <= 10_000_000, "all ten due now: {reservation:?}");
    }

    #[test]
    fn a_bucket_booked_beyond_the_wait_says_when_to_come_back() {
        let rate = Rate::per_second(10);
        let now = 1_000_000;
        let booked = now + 20_000_000;
        match reserve(rate, Some(booked), now, 1, WAIT) {
            Decision::Busy(after) => {
                assert!(
                    after > Duration::from_secs(15) && after < Duration::from_secs(20),
                    "{after:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn combined_slots_follow_the_slower_bucket() {
        let phone = Reservation { start_us: 0, interval_us: 12_500, count: 3 };
        let tenant = Reservation { start_us: 5_000, interval_us: 100_000, count: 3 };
        assert_eq!(phone.combine(tenant).due_us(2), 205_000);
        assert_eq!(Rate::per_second(5000).get(), 1000);
        assert_eq!(Rate::per_second(0).get(), 1);
    }
}
