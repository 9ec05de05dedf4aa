//! Servers whose telemetry a test reads: their log lines (the access log among them) in a
//! [`LogCapture`], and their OpenTelemetry pipeline flushed on demand.

use std::{
    io,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use mcp_server::{Settings, Telemetry};
use tokio::sync::Notify;
use tracing_subscriber::fmt::{MakeWriter, writer::BoxMakeWriter};

use crate::{TestServer, bind_loopback, install_crypto_provider};

/// Log lines as a server writes them.
#[derive(Clone, Default)]
pub struct LogCapture {
    text: Arc<Mutex<Vec<u8>>>,
    written: Arc<Notify>,
}

impl LogCapture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The first line that contains every one of `needles`, waiting for it up to `within`.
    ///
    /// # Panics
    /// When no such line is written in time.
    pub async fn line_with(&self, needles: &[&str], within: Duration) -> String {
        let waited = tokio::time::timeout(within, async {
            loop {
                let written = self.written.notified();
                tokio::pin!(written);
                written.as_mut().enable();
                let text = self.text();
                let found = text
                    .lines()
                    .find(|line| needles.iter().all(|needle| line.contains(needle)));
                if let Some(line) = found {
                    return line.to_owned();
                }
                written.await;
            }
        })
        .await;
        match waited {
            Ok(line) => line,
            Err(_) => panic!("no log line with {needles:?} in:\n{}", self.text()),
        }
    }
}

pub struct CaptureWriter(LogCapture);

impl io::Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        self.0.written.notify_waiters();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter(self.clone())
    }
}

/// A server started from `(ENV_VAR, value)` settings, its telemetry and its log lines.
pub struct Observed {
    pub server: TestServer,
    pub telemetry: Telemetry,
    pub logs: LogCapture,
}

/// Starts a server from `vars` (as if they were its environment) whose logs a test reads.
///
/// # Panics
/// When the settings don't parse or its telemetry cannot start: a broken test setup.
pub async fn start_observed(vars: &[(&str, &str)]) -> Observed {
    install_crypto_provider();
    let mut settings = match Settings::from_map(vars) {
        Ok(settings) => settings,
        Err(error) => panic!("test settings do not parse: {error}"),
    };
    settings.settle_instance_id();
    let instance_id = settings.instance_id.clone().unwrap_or_default();
    let logs = LogCapture::default();
    let writer = Some(BoxMakeWriter::new(logs.clone()));
    let telemetry = match Telemetry::scoped(&settings.telemetry_settings(), &instance_id, writer) {
        Ok(telemetry) => telemetry,
        Err(error) => panic!("telemetry does not start: {error}"),
    };
    let (listener, addr) = bind_loopback().await;
    let serving = telemetry.clone();
    let server = TestServer::spawn(addr, move |stop| {
        mcp_server::serve_with(listener, settings, serving, stop, None)
    });
    Observed {
        server,
        telemetry,
        logs,
    }
}

/// How long a test waits for a log line a request writes as it ends.
pub const LOG_WAIT: Duration = Duration::from_secs(10);
