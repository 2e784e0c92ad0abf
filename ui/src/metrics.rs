//! `/metrics`: the flow's counters in the Prometheus text exposition format
//! (version 0.0.4).
//!
//! Metric names are stable (dashboards depend on them):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sluice_flow_info` | gauge (1) | `flow` |
//! | `sluice_uptime_seconds` | gauge | |
//! | `sluice_processor_invocations_total` | counter | `processor`, `type` |
//! | `sluice_processor_flowfiles_in_total`, `_bytes_in_total` | counter | `processor`, `type` |
//! | `sluice_processor_flowfiles_out_total`, `_bytes_out_total` | counter | `processor`, `type` |
//! | `sluice_processor_flowfiles_created_total`, `_flowfiles_dropped_total` | counter | `processor`, `type` |
//! | `sluice_processor_errors_total`, `_rollbacks_total` | counter | `processor`, `type` |
//! | `sluice_processor_active_tasks` | gauge | `processor`, `type` |
//! | `sluice_processor_running`, `_back_pressured` | gauge (0/1) | `processor`, `type` |
//! | `sluice_processor_counter_total` | counter | `processor`, `type`, `name` (e.g. `udp.dropped`) |
//! | `sluice_connection_queued`, `_queued_bytes` | gauge | `connection`, `from`, `to` |
//! | `sluice_connection_max_count`, `_max_bytes` | gauge | `connection`, `from`, `to` |
//! | `sluice_connection_fill_ratio` | gauge (0..1+) | `connection`, `from`, `to` |
//! | `sluice_connection_back_pressured` | gauge (0/1) | `connection`, `from`, `to` |
//! | `sluice_connection_enqueued_total`, `_dequeued_total` | counter | `connection`, `from`, `to` |
//! | `sluice_connection_dropped_total` | counter | `connection`, `from`, `to`, `reason` (`overflow`, `expired`) |
//! | `sluice_orphaned_flowfiles` | gauge | `connection` |

use std::fmt::Write;

use sluice_runtime::{ConnectionStatus, DropReason, FlowStatus, ProcessorStatus};

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// (name suffix, help, value) of one metric family.
type Field<T, V> = (&'static str, &'static str, fn(&T) -> V);

struct Out(String);

impl Out {
    fn family<T>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        items: &[T],
        sample: impl Fn(&T) -> Vec<(String, f64)>,
    ) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for item in items {
            for (lbl, value) in sample(item) {
                let _ = writeln!(self.0, "{name}{lbl} {value}");
            }
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn f(v: u64) -> f64 {
    v as f64
}

fn bool01(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn plabels(p: &ProcessorStatus) -> String {
    labels(&[("processor", &p.id), ("type", &p.kind)])
}

fn clabels(c: &ConnectionStatus, extra: &[(&str, &str)]) -> String {
    let mut l = vec![
        ("connection", c.id.as_str()),
        ("from", &c.from),
        ("to", &c.to),
    ];
    l.extend_from_slice(extra);
    labels(&l)
}

/// Renders `status` in the Prometheus text format.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn render(status: &FlowStatus) -> String {
    let mut out = Out(String::new());
    out.family(
        "sluice_flow_info",
        "gauge",
        "The running flow (always 1).",
        &[status.name.as_str()],
        |name| vec![(labels(&[("flow", name)]), 1.0)],
    );
    out.family(
        "sluice_uptime_seconds",
        "gauge",
        "Seconds since the flow started.",
        &[status.uptime_ms],
        |ms| vec![(String::new(), f(*ms) / 1000.0)],
    );
    let ps = &status.processors;
    let counter = |field: fn(&ProcessorStatus) -> u64| {
        move |p: &ProcessorStatus| vec![(plabels(p), f(field(p)))]
    };
    let processor_counters: [Field<ProcessorStatus, u64>; 9] = [
        ("invocations", "Completed triggers.", |p| p.invocations),
        ("flowfiles_in", "FlowFiles taken from input queues.", |p| {
            p.flowfiles_in
        }),
        ("bytes_in", "Content bytes taken in.", |p| p.bytes_in),
        (
            "flowfiles_out",
            "FlowFiles transferred to connections.",
            |p| p.flowfiles_out,
        ),
        ("bytes_out", "Content bytes transferred out.", |p| {
            p.bytes_out
        }),
        ("flowfiles_created", "FlowFiles created here.", |p| {
            p.flowfiles_created
        }),
        (
            "flowfiles_dropped",
            "FlowFiles removed or auto-terminated here.",
            |p| p.flowfiles_dropped,
        ),
        (
            "errors",
            "Failed triggers (rolled back, bulletin raised).",
            |p| p.errors,
        ),
        ("rollbacks", "Sessions rolled back.", |p| p.rollbacks),
    ];
    for (name, help, field) in processor_counters {
        out.family(
            &format!("sluice_processor_{name}_total"),
            "counter",
            help,
            ps,
            counter(field),
        );
    }
    out.family(
        "sluice_processor_active_tasks",
        "gauge",
        "Tasks running the processor now.",
        ps,
        |p| vec![(plabels(p), f(p.active_tasks))],
    );
    out.family(
        "sluice_processor_running",
        "gauge",
        "1 if the processor is scheduled, 0 if an operator stopped it.",
        ps,
        |p| vec![(plabels(p), bool01(p.state == "running"))],
    );
    out.family(
        "sluice_processor_back_pressured",
        "gauge",
        "1 if a full outgoing connection holds the processor back.",
        ps,
        |p| vec![(plabels(p), bool01(p.back_pressured))],
    );
    out.family(
        "sluice_processor_counter_total",
        "counter",
        "Named counters of a processor (drops, retries...).",
        ps,
        |p| {
            p.counters
                .iter()
                .map(|(name, v)| {
                    (
                        labels(&[("processor", &p.id), ("type", &p.kind), ("name", name)]),
                        f(*v),
                    )
                })
                .collect()
        },
    );
    let cs = &status.connections;
    let gauges: [Field<ConnectionStatus, f64>; 6] = [
        ("queued", "FlowFiles queued.", |c| f(c.queued_count)),
        ("queued_bytes", "Content bytes queued.", |c| {
            f(c.queued_bytes)
        }),
        ("max_count", "Back-pressure object threshold.", |c| {
            f(c.max_count)
        }),
        ("max_bytes", "Back-pressure byte threshold.", |c| {
            f(c.max_bytes)
        }),
        (
            "fill_ratio",
            "Queue fill: the larger of count/max_count and bytes/max_bytes.",
            |c| c.fill,
        ),
        (
            "back_pressured",
            "1 if the connection is full and blocks its upstream processor.",
            |c| bool01(c.back_pressured),
        ),
    ];
    for (name, help, field) in gauges {
        out.family(
            &format!("sluice_connection_{name}"),
            "gauge",
            help,
            cs,
            |c| vec![(clabels(c, &[]), field(c))],
        );
    }
    out.family(
        "sluice_connection_enqueued_total",
        "counter",
        "FlowFiles ever put in the connection.",
        cs,
        |c| vec![(clabels(c, &[]), f(c.enqueued))],
    );
    out.family(
        "sluice_connection_dequeued_total",
        "counter",
        "FlowFiles ever taken from the connection.",
        cs,
        |c| vec![(clabels(c, &[]), f(c.dequeued))],
    );
    out.family(
        "sluice_connection_dropped_total",
        "counter",
        "FlowFiles dropped by the connection: when-full policy (overflow) or age-off (expired).",
        cs,
        |c| {
            vec![
                (
                    clabels(c, &[("reason", DropReason::Overflow.as_str())]),
                    f(c.dropped_overflow),
                ),
                (
                    clabels(c, &[("reason", DropReason::Expired.as_str())]),
                    f(c.dropped_expired),
                ),
            ]
        },
    );
    let orphaned: Vec<(&String, &u64)> = status.orphaned.iter().collect();
    out.family(
        "sluice_orphaned_flowfiles",
        "gauge",
        "Recovered FlowFiles whose connection is no longer in the flow (kept, not dropped).",
        &orphaned,
        |(c, n)| vec![(labels(&[("connection", c)]), f(**n))],
    );
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z\nw")]), "{a=\"x\\\"y\\\\z\\nw\"}");
    }
}
