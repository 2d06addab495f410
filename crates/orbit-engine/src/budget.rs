//! Named budgets of primitives (ai tokens, tools calls, fetch requests),
//! shared by a run and the runs it starts.
//!
//! Fuel is the engine's own budget, kept by wasmtime in the store. The
//! per-run budgets of primitives live here instead of in each primitive's
//! per-run state so that one run's tree spends one budget:
//! - a child started by `jobs::invoke` shares its parent's [`Budgets`] (the
//!   same ledger, not a copy), so what the child spends the parent no longer
//!   has;
//! - a job queued by `jobs::enqueue` takes a slice of its parent's budgets
//!   at enqueue ([`Budgets::share`], [`Budgets::take`]) and runs on that slice
//!   ([`Budgets::with_limits`]).
//!
//! Invariant: for every name, `used` only grows, and a spend that would
//! take `used` past `limit` is refused and leaves `used` unchanged, so
//! `used <= limit` always holds.
//!
//! A primitive names its budget with a constant of its own (`"ai.tokens"`);
//! the engine knows no names, so a new primitive touches no other one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One named budget: its limit and what has been spent of it, in the
/// primitive's own unit (tokens, calls, requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The most that may be spent.
    pub limit: u64,
    /// Spent so far (never more than `limit`).
    pub used: u64,
}

impl Budget {
    /// What is left: `limit - used`.
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// A spend was refused: the budget named `name` has less than was asked
/// left (`limit - used`), or was never opened (both 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget {name} spent: {used} of {limit} used")]
#[non_exhaustive]
pub struct BudgetSpent {
    /// The budget's name, as the primitive gave it.
    pub name: String,
    /// Its limit.
    pub limit: u64,
    /// What had been spent when the spend was refused.
    pub used: u64,
}

/// The named budgets of a run (and of the child runs that share them).
/// Cheap to clone: clones share one ledger.
#[derive(Debug, Clone, Default)]
pub struct Budgets {
    ledger: Arc<Mutex<BTreeMap<String, Budget>>>,
}

impl Budgets {
    /// A fresh ledger with no budget opened: each primitive opens its own
    /// with [`Budgets::open`] at its per-run default.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh ledger whose budgets are capped at `limits` (name → limit),
    /// for a queued job's run: a primitive opening one of these names gets
    /// the smaller of its own default and this limit.
    pub fn with_limits(limits: impl IntoIterator<Item = (String, u64)>) -> Self {
        let ledger = limits.into_iter().map(|(name, limit)| (name, Budget { limit, used: 0 })).collect();
        Self { ledger: Arc::new(Mutex::new(ledger)) }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Budget>> {
        // The ledger holds plain numbers; a panic elsewhere cannot leave it
        // half-updated, so a poisoned lock is still good.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the budget `name` at `limit`, called by a primitive when it
    /// prepares a run. If it is already open (the ledger is a parent's, or
    /// a queued job's slice), its limit becomes the smaller of the two and
    /// what was spent stays spent.
    pub fn open(&self, name: &str, limit: u64) {
        let mut ledger = self.lock();
        match ledger.get_mut(name) {
            Some(b) => b.limit = b.limit.min(limit),
            None => {
                ledger.insert(name.to_owned(), Budget { limit, used: 0 });
            }
        }
    }

    /// The budget `name`, or `None` if no primitive opened it.
    pub fn get(&self, name: &str) -> Option<Budget> {
        self.lock().get(name).copied()
    }

    /// Spends `amount` of the budget `name`.
    ///
    /// # Errors
    /// [`BudgetSpent`] when less than `amount` is left (nothing is spent
    /// then), or when the budget was never opened (a primitive that spends
    /// must open its budget in `prepare`).
    pub fn spend(&self, name: &str, amount: u64) -> Result<(), BudgetSpent> {
        let mut ledger = self.lock();
        let Some(b) = ledger.get_mut(name) else {
            return Err(BudgetSpent { name: name.to_owned(), limit: 0, used: 0 });
        };
        match b.used.checked_add(amount) {
            Some(used) if used <= b.limit => {
                b.used = used;
                Ok(())
            }
            _ => Err(BudgetSpent { name: name.to_owned(), limit: b.limit, used: b.used }),
        }
    }

    /// Spends `amount` of the budget `name`, or all that is left of it if
    /// that is less: for a cost known only afterwards (the tokens a model
    /// reported). Returns what was spent.
    pub fn spend_up_to(&self, name: &str, amount: u64) -> u64 {
        let mut ledger = self.lock();
        let Some(b) = ledger.get_mut(name) else { return 0 };
        let spent = amount.min(b.remaining());
        b.used += spent;
        spent
    }

    /// A slice of every open budget for a job queued by this run:
    /// `numerator / denominator` (at most 1) of what is left of it, rounded
    /// down. The `jobs` primitive passes the job's fuel over the fuel the
    /// run has left, so a job handed a quarter of the fuel left gets a
    /// quarter of what is left of each budget. Nothing is spent: once the
    /// job is queued, [`Budgets::take`] spends the slice, and the job runs
    /// on it ([`Budgets::with_limits`]). The two are separate steps because
    /// a ledger is spent by one run at a time (a child started by `invoke`
    /// runs while its parent waits); a ledger shared by runs in flight at
    /// once could see a slice taken twice over.
    pub fn share(&self, numerator: u64, denominator: u64) -> BTreeMap<String, u64> {
        let denominator = denominator.max(1);
        let numerator = numerator.min(denominator);
        self.lock()
            .iter()
            .map(|(name, b)| {
                let share = u128::from(b.remaining()) * u128::from(numerator) / u128::from(denominator);
                (name.clone(), share as u64)
            })
            .collect()
    }

    /// Spends `slices` (name → amount, from [`Budgets::share`]), each up to
    /// what is left of it.
    pub fn take(&self, slices: &BTreeMap<String, u64>) {
        for (name, amount) in slices {
            self.spend_up_to(name, *amount);
        }
    }

    /// Every open budget, by name.
    pub fn snapshot(&self) -> BTreeMap<String, Budget> {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_ledger_is_one_budget() {
        let parent = Budgets::new();
        parent.open("ai.tokens", 100);
        let child = parent.clone();
        child.open("ai.tokens", 1_000); // a larger default never raises the limit
        child.spend("ai.tokens", 60).unwrap();
        let refused = parent.spend("ai.tokens", 41).unwrap_err();
        assert_eq!((refused.limit, refused.used), (100, 60));
        parent.spend("ai.tokens", 40).unwrap();
        assert_eq!(parent.get("ai.tokens"), Some(Budget { limit: 100, used: 100 }));
    }

    #[test]
    fn an_unopened_budget_refuses() {
        assert!(Budgets::new().spend("tools.calls", 1).is_err());
        assert_eq!(Budgets::new().spend_up_to("tools.calls", 1), 0);
    }

    #[test]
    fn spend_up_to_stops_at_the_limit() {
        let b = Budgets::new();
        b.open("ai.tokens", 10);
        assert_eq!(b.spend_up_to("ai.tokens", 7), 7);
        assert_eq!(b.spend_up_to("ai.tokens", 7), 3);
        assert_eq!(b.get("ai.tokens").unwrap().remaining(), 0);
    }

    #[test]
    fn slices_are_shares_of_what_is_left_and_never_add_up_to_more() {
        let parent = Budgets::new();
        parent.open("fetch.requests", 100);
        parent.spend("fetch.requests", 4).unwrap();
        let slice = parent.share(1, 4);
        assert_eq!(slice["fetch.requests"], 24, "a quarter of the 96 left");
        assert_eq!(parent.get("fetch.requests").unwrap().used, 4, "share spends nothing");
        let mut given = 0;
        for _ in 0..1_000 {
            let slice = parent.share(1, 2);
            parent.take(&slice);
            given += slice["fetch.requests"];
            // The job's own default never raises its slice.
            let job = Budgets::with_limits(slice.clone());
            job.open("fetch.requests", 100);
            assert_eq!(job.get("fetch.requests").unwrap().limit, slice["fetch.requests"]);
        }
        let left = parent.get("fetch.requests").unwrap();
        assert_eq!(4 + given + left.remaining(), 100);
        assert_eq!(left.remaining(), 1, "halving leaves the parent one request");
    }
}
