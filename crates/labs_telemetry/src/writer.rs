//! The log writer: loggers append their lines to a shared buffer, a thread of its own takes the
//! whole buffer and writes it with one `write(2)`.
//!
//! - **No request waits on a write.** A logging thread copies its line into the buffer under a
//!   mutex held for that copy alone; the writer thread swaps the buffer out and writes it
//!   outside the lock.
//! - **Not lossy, bounded.** When the writer falls behind and the buffer holds
//!   [`spawn`]'s `limit` bytes, loggers wait for it (back-pressure) instead of dropping lines or
//!   growing without bound: two buffers are held, each under twice `limit` (a `Vec` doubles).
//! - **Nothing held back for long.** Woken by a line, the writer lets the lines of the next
//!   [`LINGER`] (2 ms) join it, then writes; under load the lines that arrived during one write
//!   go out together in the next.
//! - **Lines stay whole.** Each `write` call is one line (our JSON layer and tracing-subscriber's
//!   text layer write a line per call) and is appended whole, so lines from several threads
//!   never interleave.
//! - **After shutdown** ([`WriterGuard`] dropped: the buffer written out, the thread stopped),
//!   a late line (a task still logging while the process exits) is written directly.
//!
//! Why not tracing-appender's `NonBlocking`, which this replaced: it copies every line into a
//! `Vec` of its own and sends it over a channel, and the writer thread frees it: an allocation
//! per line, freed on another thread. Here the buffers are reused and nothing is allocated per
//! line. Together with the other changes of the same step, echo went from 55.1k to 51.4k
//! instructions per request, and from 0.51 to 0.52 of the bare hyper ceiling
//! (docs/PERFORMANCE.md, 2026-12-07).

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The loggers' side: `io::Write` through a shared reference, and tracing-subscriber's
/// `MakeWriter`.
#[derive(Clone)]
pub(crate) struct LineWriter(Arc<Shared>);

/// Stops the writer thread when dropped, after it has written everything handed to it.
pub(crate) struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

type Output = Box<dyn Write + Send>;

struct Shared {
    state: Mutex<State>,
    /// Signalled when lines arrive while the writer thread sleeps, and at shutdown.
    filled: Condvar,
    /// Signalled when the writer thread takes the buffer and loggers are waiting for room.
    emptied: Condvar,
    limit: usize,
    /// The output, while no thread writes to it: before the writer thread takes it and after
    /// it has given it back (shutdown). Late lines are written to it directly.
    idle_output: Mutex<Option<Output>>,
}

struct State {
    pending: Vec<u8>,
    writer_sleeping: bool,
    loggers_waiting: usize,
    closing: bool,
    /// The writer thread has stopped: lines are written directly.
    stopped: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A logger that panicked mid-copy leaves at worst a partial line: keep logging.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the writer thread over `output`. Loggers wait once `limit` bytes are pending.
pub(crate) fn spawn(
    output: impl Write + Send + 'static,
    limit: usize,
) -> io::Result<(LineWriter, WriterGuard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            pending: Vec::with_capacity(limit.min(64 * 1024)),
            writer_sleeping: false,
            loggers_waiting: 0,
            closing: false,
            stopped: false,
        }),
        filled: Condvar::new(),
        emptied: Condvar::new(),
        limit,
        idle_output: Mutex::new(None),
    });
    let output: Output = Box::new(output);
    let for_thread = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_until_closed(&for_thread, output))?;
    Ok((
        LineWriter(Arc::clone(&shared)),
        WriterGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// How long the writer thread, woken by a line, lets more arrive before it writes. Without it,
/// at tens of thousands of requests a second every line found the thread asleep and woke it:
/// a futex call on the request's thread and a context switch on the writer's, per request
/// (tracing-appender's channel spins a little before it sleeps, which hid most of that). Paired
/// runs, same build otherwise: echo 32-37k req/s without the linger, 47-58k with it. A line
/// waits at most this long; under continuous load the thread never sleeps and nothing waits.
const LINGER: Duration = Duration::from_millis(2);

fn write_until_closed(shared: &Shared, mut output: Output) {
    let mut batch = Vec::with_capacity(shared.limit.min(64 * 1024));
    loop {
        let mut state = lock(&shared.state);
        let mut slept = false;
        while state.pending.is_empty() && !state.closing {
            state.writer_sleeping = true;
            slept = true;
            state = shared
                .filled
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.writer_sleeping = false;
        if slept && !state.closing {
            drop(state);
            std::thread::sleep(LINGER);
            state = lock(&shared.state);
        }
        if state.pending.is_empty() {
            // Closing, and everything handed over is written: give the output back for late
            // lines, under the state lock so that no logger appends to a buffer nobody reads.
            state.stopped = true;
            *lock(&shared.idle_output) = Some(output);
            return;
        }
        std::mem::swap(&mut state.pending, &mut batch);
        let wake_loggers = state.loggers_waiting > 0;
        drop(state);
        if wake_loggers {
            shared.emptied.notify_all();
        }
        // Errors (stdout closed) cannot be reported anywhere better; the lines are dropped, as
        // any writer to a closed stdout would.
        let _ = output.write_all(&batch).and_then(|()| output.flush());
        batch.clear();
        // A burst may have grown the buffer past the limit (one long line): give that back.
        if batch.capacity() > 2 * shared.limit {
            batch.shrink_to(shared.limit);
        }
    }
}

impl Write for &LineWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let shared = &*self.0;
        let mut state = lock(&shared.state);
        while state.pending.len() >= shared.limit && !state.stopped {
            state.loggers_waiting += 1;
            state = shared
                .emptied
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.loggers_waiting -= 1;
        }
        if state.stopped {
            drop(state);
            if let Some(output) = lock(&shared.idle_output).as_mut() {
                output.write_all(line)?;
                output.flush()?;
            }
            return Ok(line.len());
        }
        state.pending.extend_from_slice(line);
        if state.writer_sleeping {
            state.writer_sleeping = false;
            shared.filled.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Written by the writer thread as soon as it can; nothing to force here.
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LineWriter {
    type Writer = &'a LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        lock(&self.shared.state).closing = true;
        self.shared.filled.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for WriterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterGuard").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;

    /// An output that keeps what it is given, optionally slowly or held shut until released.
    #[derive(Clone, Default)]
    struct Kept {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        gate: Option<Arc<(Mutex<bool>, Condvar)>>,
        delay: Duration,
    }

    impl Write for Kept {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(gate) = &self.gate {
                let (open, changed) = &**gate;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = changed.wait(open).unwrap();
                }
            }
            std::thread::sleep(self.delay);
            self.bytes.lock().unwrap().extend_from_slice(buf);
            *self.writes.lock().unwrap() += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Kept {
        fn text(&self) -> String {
            String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn every_line_from_every_thread_arrives_whole_and_in_each_threads_order() {
        // A writer slower than the loggers and a small limit: loggers keep hitting the limit
        // and waiting, and the writer takes many lines per write.
        let kept = Kept {
            delay: Duration::from_micros(200),
            ..Kept::default()
        };
        let (writer, guard) = spawn(kept.clone(), 256).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for line in 0..2_000 {
                        let text =
                            format!("thread {thread} line {line} {}\n", "x".repeat(line % 50));
                        (&writer).write_all(text.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let text = kept.text();
        let mut next = [0_usize; 4];
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 5, "{line:?}");
            let thread: usize = fields[1].parse().unwrap();
            let number: usize = fields[3].parse().unwrap();
            assert_eq!(number, next[thread], "{line:?}");
            assert_eq!(fields[4], "x".repeat(number % 50));
            next[thread] += 1;
        }
        assert_eq!(next, [2_000; 4]);
        // Batched: far fewer writes than lines.
        assert!(*kept.writes.lock().unwrap() < 8_000 / 2);
    }

    #[test]
    fn a_line_is_written_without_waiting_for_more_lines() {
        let kept = Kept::default();
        let (writer, _guard) = spawn(kept.clone(), 1024 * 1024).unwrap();
        (&writer).write_all(b"alone\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while kept.text().is_empty() {
            assert!(Instant::now() < deadline, "the line was held back");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(kept.text(), "alone\n");
    }

    #[test]
    fn a_full_buffer_makes_loggers_wait_until_the_writer_catches_up() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let kept = Kept {
            gate: Some(Arc::clone(&gate)),
            ..Kept::default()
        };
        let (writer, guard) = spawn(kept.clone(), 64).unwrap();
        // Opens the gate however the test ends (dropped before `guard`, whose drop waits for
        // the writer thread), so that a failing assertion fails instead of hanging.
        let opener = Opens(Arc::clone(&gate));
        let line = |byte: u8| {
            let mut line = vec![byte; 63];
            line.push(b'\n');
            line
        };
        // The first line goes to the writer, which is now stuck in `write`; the next one fills
        // the buffer to its limit.
        (&writer).write_all(&line(b'a')).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lock(&writer.0.state).pending.is_empty() {
            assert!(
                Instant::now() < deadline,
                "the writer never took the first line"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        (&writer).write_all(&line(b'b')).unwrap();
        let (done, finished) = mpsc::channel();
        let late = writer;
        let logger = std::thread::spawn(move || {
            (&late).write_all(b"waits\n").unwrap();
            done.send(()).unwrap();
        });
        assert!(
            finished.recv_timeout(Duration::from_millis(300)).is_err(),
            "a logger went past a full buffer"
        );
        opener.open();
        finished.recv_timeout(Duration::from_secs(10)).unwrap();
        logger.join().unwrap();
        drop(guard);
        let expected = format!("{}\n{}\nwaits\n", "a".repeat(63), "b".repeat(63));
        assert_eq!(kept.text(), expected);
    }

    struct Opens(Arc<(Mutex<bool>, Condvar)>);

    impl Opens {
        fn open(&self) {
            *self.0.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
            self.0.1.notify_all();
        }
    }

    impl Drop for Opens {
        fn drop(&mut self) {
            self.open();
        }
    }

    #[test]
    fn lines_after_shutdown_are_written_directly() {
        let kept = Kept::default();
        let (writer, guard) = spawn(kept.clone(), 1024).unwrap();
        (&writer).write_all(b"before\n").unwrap();
        drop(guard);
        assert_eq!(kept.text(), "before\n");
        (&writer).write_all(b"after\n").unwrap();
        assert_eq!(kept.text(), "before\nafter\n");
    }
}
