//! What the command draws on stderr: progress bars, download bars and the library's
//! warnings (the library itself prints nothing; it reports through callbacks and `log`).

use std::io::IsTerminal;

use lpips::weights::Progress;

use crate::error::CliError;

/// A progress bar on stderr when it is a terminal (hidden when piped or `--quiet`).
pub(crate) fn progress_bar(len: u64, quiet: bool, template: &str) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A callback that draws a download as a bar on stderr (a line at the start and end
/// when stderr is not a terminal).
pub(crate) fn download_bar() -> impl FnMut(Progress<'_>) + Send + 'static {
    let mut bar: Option<indicatif::ProgressBar> = None;
    move |event| match event {
        Progress::Preparing { temporary, .. } => crate::signals::guard_download(temporary),
        Progress::Started { url, dest, total } => {
            eprintln!("lpips: downloading {url}\n  to {}", dest.display());
            let b = progress_bar(
                total.unwrap_or(0),
                false,
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            );
            bar = Some(b);
        }
        Progress::Advanced { done } => {
            if let Some(b) = &bar {
                b.set_position(done);
            }
        }
        Progress::Finished => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
        }
        Progress::Closed => crate::signals::end_download_guard(),
        _ => {}
    }
}

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = record.level().as_str().to_ascii_lowercase();
            eprintln!("lpips: {level}: {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Shows the library's warnings (`log` records) on stderr.
pub(crate) fn init_logger() {
    static LOGGER: StderrLogger = StderrLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

/// Writes a line to stdout; a closed pipe (`lpips ... | head -1`) ends the command
/// quietly ([`CliError::StdoutClosed`]), like any Unix tool, and any other write error is
/// reported.
pub(crate) fn print_line(text: &str) -> Result<(), CliError> {
    let mut line = Vec::with_capacity(text.len() + 1);
    line.extend_from_slice(text.as_bytes());
    line.push(b'\n');
    print_bytes(&line)
}

/// Writes bytes to stdout and flushes them, as [`print_line`] does.
pub(crate) fn print_bytes(bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let result = out.write_all(bytes).and_then(|()| out.flush());
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::StdoutClosed),
        Err(e) => Err(CliError::Stdout(e)),
    }
}

/// `println!` for commands: the line goes through [`print_line`], and a write error is
/// returned from the calling function.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::terminal::print_line(&format!($($arg)*))?
    };
}
pub(crate) use outln;
