//! Ctrl-C (SIGINT) and SIGTERM: the first one asks the running command to stop at the
//! next safe point (a long folder run then keeps what it finished); a second one ends
//! the process at once, as the default action does.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe work here: an atomic store and resetting the handler.
    RECEIVED.store(signal, Ordering::SeqCst);
    // SAFETY: signal(2) is async-signal-safe; the next signal gets the default action.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
    }
}

/// Installs the handlers for SIGINT and SIGTERM.
pub(crate) fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic and calls signal(2).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// The signal that asked the command to stop, if any.
pub(crate) fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The signal's name for messages.
pub(crate) fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT (Ctrl-C)",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The temporary file of the download in progress, removed if the process is interrupted
/// (a C string leaked for the handler; null when no download runs).
static DOWNLOAD_TEMPORARY: std::sync::atomic::AtomicPtr<libc::c_char> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_signal_during_download(signal: libc::c_int) {
    let path = DOWNLOAD_TEMPORARY.swap(std::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: unlink(2) and _exit(2) are async-signal-safe; `path` is a leaked C string.
    unsafe {
        if !path.is_null() {
            libc::unlink(path);
        }
        libc::_exit(128 + signal);
    }
}

/// The signal actions a download guard replaced, restored when the download ends.
static BEFORE_DOWNLOAD: std::sync::Mutex<Option<[libc::sigaction; 2]>> =
    std::sync::Mutex::new(None);

/// While a download runs (from before it connects): Ctrl-C or SIGTERM removes its
/// temporary file and ends the process at once with 128 + the signal, whatever the
/// command did with signals before (a folder run's graceful stop would wait for the
/// server), so an interrupted download leaves nothing behind.
pub(crate) fn guard_download(temporary: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(temporary.as_os_str().as_bytes()) else {
        return;
    };
    let old = DOWNLOAD_TEMPORARY.swap(c.into_raw(), Ordering::SeqCst);
    if !old.is_null() {
        // SAFETY: came from CString::into_raw; no handler can see it any more.
        drop(unsafe { std::ffi::CString::from_raw(old) });
    }
    let mut saved = BEFORE_DOWNLOAD.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: a zeroed sigaction is a valid value to be overwritten.
    let mut before: [libc::sigaction; 2] = unsafe { std::mem::zeroed() };
    for (signal, before) in [libc::SIGINT, libc::SIGTERM].into_iter().zip(&mut before) {
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction =
                on_signal_during_download as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, before);
        }
    }
    // A guard already in place keeps the actions from before the first one.
    saved.get_or_insert(before);
}

/// The download ended (the library renamed or removed its temporary file): the signal
/// actions from before it again.
pub(crate) fn end_download_guard() {
    if let Some(before) = BEFORE_DOWNLOAD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        for (signal, action) in [libc::SIGINT, libc::SIGTERM].into_iter().zip(&before) {
            // SAFETY: restoring actions that sigaction(2) reported.
            unsafe {
                libc::sigaction(signal, action, std::ptr::null_mut());
            }
        }
    }
    let path = DOWNLOAD_TEMPORARY.swap(std::ptr::null_mut(), Ordering::SeqCst);
    if !path.is_null() {
        // SAFETY: came from CString::into_raw; the handler no longer sees it.
        drop(unsafe { std::ffi::CString::from_raw(path) });
    }
}
