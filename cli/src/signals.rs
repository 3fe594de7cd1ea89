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

/// While a download runs: Ctrl-C or SIGTERM removes its temporary file (its name holds
/// this process's id: `.lpips-download-<pid>-*` in `dir`) and ends the process, so an
/// interrupted download leaves nothing behind.
pub(crate) fn guard_download(dir: &std::path::Path) {
    let prefix = format!(".lpips-download-{}-", std::process::id());
    let temporary = std::fs::read_dir(dir).ok().and_then(|entries| {
        entries
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
    });
    let Some(temporary) = temporary else { return };
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(temporary.as_os_str().as_bytes()) else {
        return;
    };
    DOWNLOAD_TEMPORARY.store(c.into_raw(), Ordering::SeqCst);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only calls async-signal-safe functions.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction =
                on_signal_during_download as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// The download ended (the library renamed or removed its temporary file): default
/// signal actions again.
pub(crate) fn end_download_guard() {
    let path = DOWNLOAD_TEMPORARY.swap(std::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: restoring the default actions; `path` came from CString::into_raw.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        if !path.is_null() {
            drop(std::ffi::CString::from_raw(path));
        }
    }
}
