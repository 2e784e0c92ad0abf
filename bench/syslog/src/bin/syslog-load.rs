//! Load generator: sends `--count` syslog messages to `--target` over TCP
//! (octet-counted or LF-framed, over `--connections` connections) or UDP,
//! as fast as the receiver takes them, and prints what it sent.
//!
//! ```text
//! syslog-load --target 127.0.0.1:5514 --mode tcp-octet --format 5424 --count 1000000 --connections 4
//! ```

// Rates and counts for a printed report: f64 precision is plenty, and the
// byte counting is not on a hot path.
#![allow(clippy::cast_precision_loss, clippy::naive_bytecount)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sluice_bench_syslog::{Format, Mode, corpus};

/// Distinct messages generated; the load cycles through them.
const CORPUS: usize = 100_000;

struct Args {
    target: SocketAddr,
    mode: Mode,
    format: Format,
    count: usize,
    connections: usize,
    seed: u64,
}

fn args() -> Result<Args> {
    let mut a = Args {
        target: "127.0.0.1:5514".parse()?,
        mode: Mode::TcpOctet,
        format: Format::Mixed,
        count: 1_000_000,
        connections: 4,
        seed: 42,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--target" => a.target = v.parse()?,
            "--mode" => a.mode = Mode::parse(&v).map_err(anyhow::Error::msg)?,
            "--format" => a.format = Format::parse(&v).map_err(anyhow::Error::msg)?,
            "--count" => a.count = v.parse()?,
            "--connections" => a.connections = v.parse()?,
            "--seed" => a.seed = v.parse()?,
            _ => bail!("unknown argument {k}"),
        }
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = args()?;
    let (frames, _) = corpus(CORPUS.min(a.count.max(1)), a.mode, a.format, a.seed);
    let start = Instant::now();
    let sent = match a.mode {
        Mode::Udp => send_udp(&a, &frames)?,
        Mode::TcpOctet | Mode::TcpLf => send_tcp(&a, &frames)?,
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} messages in {secs:.3} s ({:.0} msgs/s)",
        sent as f64 / secs
    );
    Ok(())
}

fn send_udp(a: &Args, frames: &[Vec<u8>]) -> Result<usize> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    for i in 0..a.count {
        socket.send_to(&frames[i % frames.len()], a.target)?;
    }
    Ok(a.count)
}

fn send_tcp(a: &Args, frames: &[Vec<u8>]) -> Result<usize> {
    // The corpus framed back to back, with the offset of each message.
    let mut wire = Vec::new();
    let mut offsets = Vec::with_capacity(frames.len() + 1);
    for f in frames {
        offsets.push(wire.len());
        wire.extend_from_slice(f);
    }
    offsets.push(wire.len());
    let per = a.count / a.connections;
    let extra = a.count % a.connections;
    std::thread::scope(|s| -> Result<usize> {
        let mut handles = Vec::new();
        for c in 0..a.connections {
            let n = per + usize::from(c < extra);
            let (wire, offsets) = (&wire, &offsets);
            let target = a.target;
            handles.push(s.spawn(move || -> Result<usize> {
                let mut stream = TcpStream::connect(target)?;
                let total = offsets.len() - 1;
                let mut left = n;
                // Start each connection at a different place in the corpus.
                let mut at = (c * total / 7) % total;
                while left > 0 {
                    let take = left.min(total - at);
                    stream.write_all(&wire[offsets[at]..offsets[at + take]])?;
                    left -= take;
                    at = (at + take) % total;
                }
                stream.flush()?;
                Ok(n)
            }));
        }
        let mut sent = 0;
        for h in handles {
            sent += h
                .join()
                .map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
        }
        Ok(sent)
    })
}
