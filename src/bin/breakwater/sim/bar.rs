//! The progress bar both kinds of `breakwater sim` run draw on stderr.

use indicatif::{ProgressBar, ProgressStyle};

pub(super) fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(1), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar
}
