//! RouteOnSeverity: routes FlowFiles by their syslog severity against
//! thresholds named in the flow.
//!
//! Each route is `name: "<op> <level>"` with `op` one of `<=`, `<`, `==`,
//! `>=`, `>`, `!=` and `level` a number 0-7 or a name (`emerg`, `alert`,
//! `crit`, `err`/`error`, `warning`/`warn`, `notice`, `info`, `debug`).
//! Severities compare as numbers, and lower is more severe: `<= err` matches
//! emerg, alert, crit and err.
//!
//! A FlowFile goes to the FIRST route that matches, in the order the routes
//! are written in the flow file, and to `routine` when none does. A FlowFile
//! whose severity attribute is missing or is not a level goes to `unparsed`
//! (not to `routine`, so that unparsed input is never mistaken for routine
//! traffic); connect it or auto-terminate it.
//!
//! ```yaml
//! route:
//!   type: RouteOnSeverity
//!   properties:
//!     routes:
//!       urgent: "<= err"
//!       warning: "== warning"
//! ```

use sluice_runtime::severity::parse_level;
use sluice_runtime::{
    AttrStr, BuildContext, BuildError, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, PropValue, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, async_trait,
};

/// Where FlowFiles that match no route go.
pub const ROUTINE: &str = "routine";
/// Where FlowFiles without a readable severity go.
pub const UNPARSED: &str = "unparsed";

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        "routes",
        PropKind::MapOf(&PropKind::NonEmpty),
        "Route name -> condition such as \"<= err\" or \"== 4\"; the first match in file order wins.",
    ),
    PropertyDescriptor::optional(
        "attribute",
        PropKind::NonEmpty,
        Some("syslog.severity"),
        "Attribute holding the severity (a number 0-7 or a level name).",
    ),
];

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Le,
    Lt,
    Eq,
    Ge,
    Gt,
    Ne,
}

impl Op {
    fn holds(self, severity: i64, level: i64) -> bool {
        match self {
            Op::Le => severity <= level,
            Op::Lt => severity < level,
            Op::Eq => severity == level,
            Op::Ge => severity >= level,
            Op::Gt => severity > level,
            Op::Ne => severity != level,
        }
    }
}

/// Parses `<= err`, `==4`, `!= debug`.
fn parse_condition(s: &str) -> Result<(Op, i64), String> {
    let t = s.trim();
    let (op, rest) = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ]
    .iter()
    .find_map(|(sym, op)| t.strip_prefix(sym).map(|r| (*op, r)))
    .ok_or_else(|| {
        format!(
            "`{s}` has no operator; write one of <=, <, ==, >=, >, != then a level, e.g. \"<= err\""
        )
    })?;
    let level = parse_level(rest)?;
    Ok((op, level))
}

/// The registry entry.
pub struct RouteOnSeverityType;

fn routes(props: &Properties) -> Result<Vec<(String, Op, i64)>, Vec<PropertyError>> {
    let mut errs = Vec::new();
    let mut out = Vec::new();
    let positions: Vec<_> = match props.raw("routes") {
        Some(PropValue::Map(items, _)) => items.iter().map(|(k, v)| (k.pos, v.pos)).collect(),
        _ => Vec::new(),
    };
    let entries = props.map("routes").map_err(|e| vec![e])?;
    if entries.is_empty() {
        errs.push(PropertyError {
            name: "routes".into(),
            message: "needs at least one route".into(),
            pos: props.raw("routes").map(PropValue::pos),
        });
    }
    for (i, (name, cond)) in entries.into_iter().enumerate() {
        let (kpos, vpos) = positions.get(i).copied().unzip();
        if name == ROUTINE || name == UNPARSED {
            errs.push(PropertyError {
                name: "routes".into(),
                message: format!("`{name}` is taken by the built-in relationship of that name"),
                pos: kpos,
            });
            continue;
        }
        match parse_condition(&cond) {
            Ok((op, level)) => out.push((name, op, level)),
            Err(m) => errs.push(PropertyError {
                name: format!("routes.{name}"),
                message: m,
                pos: vpos,
            }),
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

impl ProcessorType for RouteOnSeverityType {
    fn name(&self) -> &'static str {
        "RouteOnSeverity"
    }
    fn description(&self) -> &'static str {
        "Routes by syslog severity against named thresholds (\"<= err\"); first match in file order wins, the rest go to routine, FlowFiles without a severity to unparsed."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, props: &Properties) -> Vec<RelationshipDef> {
        let mut rels: Vec<RelationshipDef> = props
            .map("routes")
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, _)| n != ROUTINE && n != UNPARSED)
            .map(|(name, cond)| RelationshipDef::new(name, format!("Severity {cond}.")))
            .collect();
        rels.push(RelationshipDef::new(
            ROUTINE,
            "FlowFiles that match no route.",
        ));
        rels.push(RelationshipDef::new(
            UNPARSED,
            "FlowFiles whose severity attribute is missing or not a level.",
        ));
        rels
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        routes(props).err().unwrap_or_default()
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let routes = routes(props)?;
        Ok(Box::new(RouteOnSeverity {
            routes: routes
                .into_iter()
                .map(|(n, op, level)| (AttrStr::constant(&n), op, level))
                .collect(),
            attribute: props.str("attribute")?.to_string(),
            key: AttrStr::constant("route.name"),
            routine: AttrStr::constant(ROUTINE),
            unparsed: AttrStr::constant(UNPARSED),
        }))
    }
    fn example(&self) -> &'static str {
        "routes:\n  urgent: \"<= err\"\n  warning: \"== warning\"\nattribute: syslog.severity"
    }
}

struct RouteOnSeverity {
    routes: Vec<(AttrStr, Op, i64)>,
    attribute: String,
    key: AttrStr,
    routine: AttrStr,
    unparsed: AttrStr,
}

impl RouteOnSeverity {
    fn route(&self, severity: Option<&str>) -> &AttrStr {
        let Some(sev) = severity.and_then(|s| parse_level(s).ok()) else {
            return &self.unparsed;
        };
        self.routes
            .iter()
            .find(|(_, op, level)| op.holds(sev, *level))
            .map_or(&self.routine, |(name, ..)| name)
    }
}

#[async_trait]
impl Processor for RouteOnSeverity {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        for mut ff in session.get_batch(ctx.scheduling().batch_size) {
            let rel = self.route(ff.attributes.get(&self.attribute)).clone();
            ff.attributes.insert(self.key.clone(), rel.clone());
            session.transfer(ff, &rel);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::Scheduling;
    use sluice_runtime::testing::{TestRunner, check_type_contract};

    #[test]
    fn contract() {
        check_type_contract(&RouteOnSeverityType, &crate::registry()).unwrap();
    }

    #[test]
    fn conditions() {
        assert_eq!(parse_condition("<= err"), Ok((Op::Le, 3)));
        assert_eq!(parse_condition("<3"), Ok((Op::Lt, 3)));
        assert_eq!(parse_condition("== Warning"), Ok((Op::Eq, 4)));
        assert_eq!(parse_condition(">= 6"), Ok((Op::Ge, 6)));
        assert_eq!(parse_condition("> notice"), Ok((Op::Gt, 5)));
        assert_eq!(parse_condition("!= debug"), Ok((Op::Ne, 7)));
        assert!(parse_condition("err").unwrap_err().contains("no operator"));
        assert!(
            parse_condition("<= 9")
                .unwrap_err()
                .contains("outside 0..=7")
        );
        assert!(
            parse_condition("<= loud")
                .unwrap_err()
                .contains("not a severity")
        );
    }

    #[test]
    fn bad_routes_are_reported_where_written() {
        let yaml = "routes:\n  urgent: \"<= err\"\n  odd: \"about err\"\n  routine: \"== 1\"\n";
        let kind = crate::registry().get("RouteOnSeverity").cloned().unwrap();
        let err = sluice_runtime::parse_properties(&kind, yaml, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":3:8: error: processor `under_test`: property `routes.odd`: `about err` has no operator"),
            "{err}"
        );
        assert!(
            err.contains(
                ":4:3: error: processor `under_test`: property `routes`: `routine` is taken"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn first_match_in_file_order_then_routine_and_unparsed() {
        // `page` would also match crit, but `urgent` comes first.
        let yaml = "routes:\n  urgent: \"<= err\"\n  page: \"<= crit\"\n  warning: \"== warning\"\n  chatty: \"> notice\"\n";
        let props = crate::test_props(&RouteOnSeverityType, yaml);
        let r = TestRunner::with_properties(&RouteOnSeverityType, props, Scheduling::default())
            .unwrap();
        for sev in [
            "0", "2", "3", "4", "5", "6", "7", "err", "warn", "loud", "12",
        ] {
            r.enqueue(sev, &[("syslog.severity", sev)]);
        }
        r.enqueue("none", &[]);
        r.run_once().await.unwrap();
        let texts =
            |rel: &str| -> Vec<String> { r.take(rel).iter().map(TestRunner::text).collect() };
        let urgent = r.take("urgent");
        assert!(
            urgent
                .iter()
                .all(|f| f.attr("route.name") == Some("urgent"))
        );
        assert_eq!(
            urgent.iter().map(TestRunner::text).collect::<Vec<_>>(),
            ["0", "2", "3", "err"]
        );
        assert!(texts("page").is_empty());
        assert_eq!(texts("warning"), ["4", "warn"]);
        assert_eq!(texts("chatty"), ["6", "7"]);
        assert_eq!(texts(ROUTINE), ["5"]);
        let unparsed = r.take(UNPARSED);
        assert!(
            unparsed
                .iter()
                .all(|f| f.attr("route.name") == Some(UNPARSED))
        );
        assert_eq!(
            unparsed.iter().map(TestRunner::text).collect::<Vec<_>>(),
            ["loud", "12", "none"]
        );
    }

    #[tokio::test]
    async fn another_attribute_can_carry_the_level() {
        let yaml = "routes:\n  loud: \"<= warning\"\nattribute: level\n";
        let props = crate::test_props(&RouteOnSeverityType, yaml);
        let r = TestRunner::with_properties(&RouteOnSeverityType, props, Scheduling::default())
            .unwrap();
        r.enqueue("a", &[("level", "error")]);
        r.enqueue("b", &[("level", "info"), ("syslog.severity", "0")]);
        r.run_once().await.unwrap();
        assert_eq!(r.take("loud").len(), 1);
        assert_eq!(r.take(ROUTINE).len(), 1);
    }
}
