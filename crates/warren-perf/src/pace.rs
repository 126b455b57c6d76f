//! `--consumer-rate N`: when a slow consumer may process its next delivery. [`ProcessingPace`] is a schedule of
//! one slot every 1/N s, sans IO: the caller passes the time, so it is tested with made-up instants.

use std::time::{Duration, Instant};

/// Unused time the schedule carries over. A timer wakes the consumer a little late (about a millisecond), so a
/// consumer that is behind processes every slot that came due meanwhile and keeps exactly N per second; one that
/// was idle gets at most this much of its budget back at once, the burst of a real worker taking a backlog.
const CARRY_OVER: Duration = Duration::from_millis(10);

/// One consumer's processing budget: at most N deliveries per second, one slot every `interval`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProcessingPace {
    interval: Duration,
    /// When the next slot frees; `None` until the first delivery, which is processed at once.
    next: Option<Instant>,
}

impl ProcessingPace {
    /// A budget of `per_second` deliveries a second (at least 1).
    pub(crate) fn new(per_second: u32) -> ProcessingPace {
        ProcessingPace {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: None,
        }
    }

    /// Takes a slot if one is free at `now`: `true` means process one delivery now.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let next = match self.next {
            Some(next) if next > now => return false,
            Some(next) => next.max(now.checked_sub(CARRY_OVER).unwrap_or(now)),
            None => now,
        };
        self.next = Some(next + self.interval);
        true
    }

    /// When the next slot frees (the time to come back when a delivery is waiting); `None` before the first.
    pub(crate) fn next_slot(&self) -> Option<Instant> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots taken when the consumer asks at each of `times` (offsets from `start`), one delivery per ask.
    fn taken(pace: &mut ProcessingPace, start: Instant, times_ms: &[u64]) -> Vec<bool> {
        times_ms
            .iter()
            .map(|&ms| pace.try_take(start + Duration::from_millis(ms)))
            .collect()
    }

    #[test]
    fn the_first_delivery_is_processed_at_once_and_the_next_one_interval_later() {
        let start = Instant::now();
        let mut pace = ProcessingPace::new(200);
        assert!(pace.try_take(start));
        assert_eq!(pace.next_slot(), Some(start + Duration::from_millis(5)));
        assert_eq!(taken(&mut pace, start, &[0, 1, 4]), [false; 3]);
        assert!(pace.try_take(start + Duration::from_millis(5)));
        assert_eq!(pace.next_slot(), Some(start + Duration::from_millis(10)));
    }

    #[test]
    fn a_late_wake_catches_up_on_the_slots_that_came_due() {
        let start = Instant::now();
        let mut pace = ProcessingPace::new(1000);
        assert!(pace.try_take(start));
        // Woken 3 ms late for the slot at 1 ms: the slots at 1, 2, 3 and 4 ms are all due, the one at 5 is not.
        let at = start + Duration::from_millis(4);
        let burst = std::iter::from_fn(|| pace.try_take(at).then_some(())).count();
        assert_eq!(burst, 4);
        assert_eq!(pace.next_slot(), Some(start + Duration::from_millis(5)));
    }

    #[test]
    fn an_idle_consumer_gets_back_at_most_the_carry_over() {
        let start = Instant::now();
        let mut pace = ProcessingPace::new(1000);
        assert!(pace.try_take(start));
        let at = start + Duration::from_secs(10);
        let burst = std::iter::from_fn(|| pace.try_take(at).then_some(())).count();
        assert_eq!(burst as u128, CARRY_OVER.as_millis() + 1);
        assert_eq!(pace.next_slot(), Some(at + Duration::from_millis(1)));
    }

    #[test]
    fn one_per_second_is_the_slowest_budget() {
        let start = Instant::now();
        let mut pace = ProcessingPace::new(1);
        assert_eq!(
            taken(&mut pace, start, &[0, 500, 999, 1000, 1500, 2000]),
            [true, false, false, true, false, true]
        );
        assert_eq!(ProcessingPace::new(0).interval, Duration::from_secs(1));
    }

    #[test]
    fn a_steady_stream_is_processed_at_exactly_the_budget() {
        let start = Instant::now();
        let mut pace = ProcessingPace::new(200);
        // A consumer always behind, woken every 3 ms (not a multiple of the 5 ms interval) for 10 s.
        let processed: usize = (0..=3333)
            .map(|i| {
                let at = start + Duration::from_millis(3 * i);
                std::iter::from_fn(|| pace.try_take(at).then_some(())).count()
            })
            .sum();
        assert_eq!(processed, 2000);
    }
}
