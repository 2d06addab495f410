//! Blocking storage work (an append and its `fdatasync`) run from async
//! code on the calling thread, where tokio allows it: the one place that
//! knows when it does.

/// Runs `f(value)` on this thread inside `tokio::task::block_in_place`
/// (the worker's other tasks move to another thread meanwhile), saving the
/// hand-offs to tokio's blocking pool and back. Returns `Err(value)`,
/// untouched, where blocking here is not allowed: outside a multi-thread
/// runtime, and in the one case the runtime's flavor does not show (a
/// multi-thread handle entered inside a current-thread runtime's
/// `block_on`, where tokio panics before running the closure). The caller
/// then hands `value` to the blocking pool or a thread of its own.
///
/// # Panics
/// When `f` panics: a panic from inside it is resumed, not swallowed.
pub fn in_place<V, T>(value: V, f: impl FnOnce(V) -> T) -> Result<T, V> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|rt| rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if !multi_thread {
        return Err(value);
    }
    let mut slot = Some(value);
    let ran =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tokio::task::block_in_place(|| slot.take().map(f))));
    match (ran, slot) {
        (_, Some(untaken)) => Err(untaken),
        // `None` cannot come back: the closure finds the slot filled.
        (Ok(done), None) => Ok(done.expect("the closure took the value")),
        (Err(panic), None) => std::panic::resume_unwind(panic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_here_only_where_tokio_allows_blocking() {
        let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let current = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(in_place(1, |v| v + 1), Err(1), "outside a runtime");
        let on_worker = multi.block_on(async { multi.spawn(async { in_place(2, |v| v + 1) }).await.unwrap() });
        assert_eq!(on_worker, Ok(3), "on a multi-thread worker");
        assert_eq!(current.block_on(async { in_place(4, |v| v + 1) }), Err(4), "on a current-thread runtime");
        let entered = current.block_on(async {
            let _in = multi.handle().enter();
            in_place(5, |v| v + 1)
        });
        assert_eq!(entered, Err(5), "a multi-thread handle inside a current-thread block_on");
    }
}
