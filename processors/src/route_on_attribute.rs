//! RouteOnAttribute: routes FlowFiles by named CEL predicates over `attr`.
//!
//! Strategies:
//! - `route-to-property-name` (default): one relationship per route. A
//!   FlowFile goes to EVERY route whose predicate is true (as NiFi does): the
//!   first match takes the FlowFile itself, each further match a child copy
//!   (a FORK in provenance). A FlowFile no route matches goes to `unmatched`.
//! - `route-to-matched`: `matched` when any route (or, with `match: all`,
//!   every route) is true, else `unmatched`.
//!
//! Every FlowFile (and copy) leaves with the attribute `route.name` = the
//! relationship it went to (`errors`, `unmatched`, `matched`...), so later
//! processors can use `{{route.name}}` in a directory or a message.
//!
//! A predicate that fails to evaluate (a missing attribute in
//! `attr["x"] == "y"`, `int()` of a word) counts as not matching for that
//! route: routing never stops on bad data. It is not silent: the FlowFile gets
//! `route.error` (the first error message), the counter `route.eval_errors`
//! counts every failed evaluation, and a warning bulletin says which route
//! failed (at most one bulletin per route every 10 seconds). Write
//! `"x" in attr && attr["x"] == "y"` to make a missing attribute an explicit
//! no-match.
//!
//! ```yaml
//! route:
//!   type: RouteOnAttribute
//!   properties:
//!     routes:
//!       errors: 'int(attr["syslog.severity"]) <= 3'
//!       web: '"http.path" in attr && attr["http.path"].startsWith("/web")'
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use sluice_runtime::{
    AttrStr, BuildContext, BuildError, InputRequirement, Level, Predicate, ProcessContext,
    ProcessError, ProcessSession, Processor, ProcessorType, PropKind, Properties,
    PropertyDescriptor, PropertyError, RelationshipDef, async_trait, now_millis,
};

/// No route matched.
pub const UNMATCHED: &str = "unmatched";
/// `route-to-matched`: the routes matched.
pub const MATCHED: &str = "matched";

const STRATEGIES: &[&str] = &["route-to-property-name", "route-to-matched"];
const MATCH_MODES: &[&str] = &["any", "all"];
/// Names a route may not take.
const RESERVED: &[&str] = &[UNMATCHED, "failure"];
/// Shortest time between two eval-error bulletins of one route.
const BULLETIN_EVERY_MS: u64 = 10_000;

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        "routes",
        PropKind::MapOf(&PropKind::Expression),
        "Named predicates (CEL over `attr`): route name -> expression.",
    ),
    PropertyDescriptor::optional(
        "strategy",
        PropKind::Choice(STRATEGIES),
        Some("route-to-property-name"),
        "`route-to-property-name`: a relationship per route, a FlowFile goes to every route that matches; `route-to-matched`: `matched` or `unmatched`.",
    ),
    PropertyDescriptor::optional(
        "match",
        PropKind::Choice(MATCH_MODES),
        Some("any"),
        "With `route-to-matched`: `any` route true, or `all` routes true.",
    ),
];

/// The registry entry.
pub struct RouteOnAttributeType;

fn by_name(props: &Properties) -> bool {
    props.str("strategy").unwrap_or("route-to-property-name") == "route-to-property-name"
}

impl ProcessorType for RouteOnAttributeType {
    fn name(&self) -> &'static str {
        "RouteOnAttribute"
    }
    fn description(&self) -> &'static str {
        "Routes FlowFiles by named CEL predicates over their attributes: to every matching route (cloning for extra matches), or to matched/unmatched."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, props: &Properties) -> Vec<RelationshipDef> {
        let mut rels = Vec::new();
        if by_name(props) {
            for (name, expr) in props.map("routes").unwrap_or_default() {
                if !rels.iter().any(|r: &RelationshipDef| r.name == name) {
                    rels.push(RelationshipDef::new(
                        name,
                        format!("FlowFiles for which `{expr}` is true."),
                    ));
                }
            }
        } else {
            rels.push(RelationshipDef::new(
                MATCHED,
                "FlowFiles the routes matched (any or all).",
            ));
        }
        rels.push(RelationshipDef::new(
            UNMATCHED,
            "FlowFiles no route matched.",
        ));
        rels
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let mut errs = Vec::new();
        let pos = props.raw("routes").map(sluice_runtime::PropValue::pos);
        let err = |message: String| PropertyError {
            name: "routes".into(),
            message,
            pos,
        };
        let routes = match props.map("routes") {
            Ok(r) => r,
            Err(e) => return vec![e],
        };
        if routes.is_empty() {
            errs.push(err("needs at least one route: name -> expression".into()));
        }
        let mut seen = Vec::new();
        for (name, _) in &routes {
            if name.trim().is_empty() {
                errs.push(err("a route name is empty".into()));
            } else if by_name(props) && RESERVED.contains(&name.as_str()) {
                errs.push(err(format!(
                    "`{name}` cannot be a route name: it is a relationship of its own; pick another name"
                )));
            }
            if seen.contains(&name) {
                errs.push(err(format!("route `{name}` is declared twice")));
            }
            seen.push(name);
        }
        errs
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let mut routes = Vec::new();
        for (name, src) in props.map("routes")? {
            let p = Predicate::compile(&src)
                .map_err(|e| BuildError::Other(format!("routes.{name}: {e}")))?;
            routes.push(Route {
                name: AttrStr::from(name.as_str()),
                predicate: p,
                last_bulletin: AtomicU64::new(0),
            });
        }
        Ok(Box::new(RouteOnAttribute {
            routes,
            by_name: by_name(props),
            all: props.str("match")? == "all",
        }))
    }
    fn example(&self) -> &'static str {
        "routes:\n  errors: 'int(attr[\"syslog.severity\"]) <= 3'\n  web: '\"http.path\" in attr && attr[\"http.path\"].startsWith(\"/web\")'"
    }
}

struct Route {
    name: AttrStr,
    predicate: Predicate,
    last_bulletin: AtomicU64,
}

struct RouteOnAttribute {
    routes: Vec<Route>,
    by_name: bool,
    all: bool,
}

impl RouteOnAttribute {
    /// Evaluates every route; an error counts as false and is reported.
    fn evaluate(
        &self,
        ctx: &ProcessContext,
        ff: &mut sluice_runtime::FlowFile,
        errors: &AtomicU64,
    ) -> Vec<bool> {
        let mut first_error = None;
        let results = self
            .routes
            .iter()
            .map(|r| match r.predicate.eval(&ff.attributes) {
                Ok(b) => b,
                Err(e) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    let now = now_millis();
                    let last = r.last_bulletin.load(Ordering::Relaxed);
                    if now.saturating_sub(last) >= BULLETIN_EVERY_MS
                        && r
                            .last_bulletin
                            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                    {
                        ctx.bulletin(
                            Level::Warn,
                            format!(
                                "route `{}` could not be evaluated (counted as no match; see counter route.eval_errors): {e}",
                                r.name
                            ),
                        );
                    }
                    first_error.get_or_insert_with(|| e.to_string());
                    false
                }
            })
            .collect();
        if let Some(e) = first_error {
            ff.attributes.insert("route.error", e);
        }
        results
    }
}

#[async_trait]
impl Processor for RouteOnAttribute {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let errors = ctx.counter("route.eval_errors");
        let route_attr = AttrStr::from("route.name");
        for mut ff in session.get_batch(ctx.scheduling().batch_size) {
            let hits = self.evaluate(ctx, &mut ff, &errors);
            if !self.by_name {
                let matched = if self.all {
                    hits.iter().all(|h| *h)
                } else {
                    hits.iter().any(|h| *h)
                };
                let rel = if matched { MATCHED } else { UNMATCHED };
                ff.attributes.insert(route_attr.clone(), rel);
                session.transfer(ff, rel);
                continue;
            }
            let matched: Vec<&Route> = self
                .routes
                .iter()
                .zip(&hits)
                .filter_map(|(r, h)| h.then_some(r))
                .collect();
            let Some((first, rest)) = matched.split_first() else {
                ff.attributes.insert(route_attr.clone(), UNMATCHED);
                session.transfer(ff, UNMATCHED);
                continue;
            };
            for r in rest {
                let mut child = session.create_child(&ff);
                child.attributes.insert(route_attr.clone(), r.name.clone());
                session.transfer(child, &r.name);
            }
            ff.attributes.insert(route_attr.clone(), first.name.clone());
            session.transfer(ff, &first.name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sluice_runtime::testing::{TestRunner, check_type_contract, props_from_yaml};

    fn runner(yaml: &str) -> TestRunner {
        crate::test_runner(&RouteOnAttributeType, yaml)
    }

    const ROUTES: &str =
        "routes:\n  errors: 'int(attr[\"sev\"]) <= 3'\n  web: 'attr[\"app\"] == \"web\"'\n";

    #[test]
    fn contract() {
        check_type_contract(&RouteOnAttributeType, &crate::registry()).unwrap();
    }

    #[test]
    fn relationships_follow_the_routes_and_strategy() {
        let names = |yaml: &str| {
            let p = crate::test_props(&RouteOnAttributeType, yaml);
            RouteOnAttributeType
                .relationships(&p)
                .into_iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(ROUTES), vec!["errors", "web", "unmatched"]);
        assert_eq!(
            names(&format!("{ROUTES}strategy: route-to-matched")),
            vec!["matched", "unmatched"]
        );
    }

    #[test]
    fn bad_route_names_are_refused() {
        let reg = crate::registry();
        for (yaml, expect) in [
            (
                "routes:\n  unmatched: 'true'",
                "`unmatched` cannot be a route name",
            ),
            (
                "routes:\n  failure: 'true'",
                "`failure` cannot be a route name",
            ),
            ("routes:\n  '': 'true'", "a route name is empty"),
            ("routes: {}", "at least one route"),
            ("routes:\n  a: 'attr['", "bad expression"),
        ] {
            let err = props_from_yaml(&RouteOnAttributeType, &reg, yaml).unwrap_err();
            assert!(err.contains(expect), "{yaml}: {err}");
        }
    }

    #[tokio::test]
    async fn every_matching_route_gets_a_copy() {
        let r = runner(ROUTES);
        let both = r.enqueue("b", &[("sev", "2"), ("app", "web")]);
        let only_err = r.enqueue("e", &[("sev", "1"), ("app", "db")]);
        let none = r.enqueue("n", &[("sev", "6"), ("app", "db")]);
        r.run_once().await.unwrap();
        let errors = r.take("errors");
        let web = r.take("web");
        let unmatched = r.take(UNMATCHED);
        assert_eq!(
            errors.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![both, only_err]
        );
        assert_eq!(web.len(), 1);
        // The extra match is a child: new id, same content and attributes.
        assert_ne!(web[0].id, both);
        assert_eq!(TestRunner::text(&web[0]), "b");
        assert_eq!(web[0].attr("app"), Some("web"));
        assert_eq!(web[0].attr("route.name"), Some("web"));
        assert_eq!(errors[0].attr("route.name"), Some("errors"));
        assert_eq!(
            unmatched.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![none]
        );
        assert_eq!(unmatched[0].attr("route.name"), Some("unmatched"));
        // Provenance shows the fork.
        let forks: Vec<_> = r
            .provenance
            .lineage(both)
            .into_iter()
            .filter(|e| e.kind == sluice_runtime::EventKind::Fork)
            .collect();
        assert_eq!(forks.len(), 1);
        assert_eq!(forks[0].flowfile, web[0].id);
    }

    #[tokio::test]
    async fn route_to_matched_any_and_all() {
        let r = runner(&format!("{ROUTES}strategy: route-to-matched"));
        let one = r.enqueue("", &[("sev", "2"), ("app", "db")]);
        let none = r.enqueue("", &[("sev", "5"), ("app", "db")]);
        r.run_once().await.unwrap();
        let matched = r.take(MATCHED);
        assert_eq!(matched.iter().map(|f| f.id).collect::<Vec<_>>(), vec![one]);
        assert_eq!(matched[0].attr("route.name"), Some("matched"));
        let unmatched = r.take(UNMATCHED);
        assert_eq!(
            unmatched.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![none]
        );
        assert_eq!(unmatched[0].attr("route.name"), Some("unmatched"));

        let r = runner(&format!("{ROUTES}strategy: route-to-matched\nmatch: all"));
        let both = r.enqueue("", &[("sev", "2"), ("app", "web")]);
        let one = r.enqueue("", &[("sev", "2"), ("app", "db")]);
        r.run_once().await.unwrap();
        assert_eq!(
            r.take(MATCHED).iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![both]
        );
        assert_eq!(
            r.take(UNMATCHED).iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![one]
        );
    }

    #[tokio::test]
    async fn eval_errors_are_no_match_but_counted_marked_and_bulletined() {
        let r = runner(ROUTES);
        // No `app`: the `web` route fails to evaluate; `errors` still matches.
        let a = r.enqueue("", &[("sev", "1")]);
        // `sev` is a word: `errors` fails; no `app` either.
        let b = r.enqueue("", &[("sev", "high")]);
        r.run_once().await.unwrap();
        let errors = r.take("errors");
        assert_eq!(errors.iter().map(|f| f.id).collect::<Vec<_>>(), vec![a]);
        assert!(
            errors[0]
                .attr("route.error")
                .is_some_and(|e| e.contains("app"))
        );
        let unmatched = r.take(UNMATCHED);
        assert_eq!(unmatched.iter().map(|f| f.id).collect::<Vec<_>>(), vec![b]);
        assert!(unmatched[0].attr("route.error").is_some());
        assert_eq!(
            r.ctx.counter("route.eval_errors").load(Ordering::Relaxed),
            3
        );
        // One bulletin per failing route, not one per FlowFile.
        let bulletins = r.ctx.stats().bulletins();
        assert_eq!(bulletins.len(), 2, "{bulletins:?}");
        assert!(bulletins.iter().all(|b| b.level == Level::Warn));
        for _ in 0..5 {
            r.enqueue("", &[("sev", "x")]);
        }
        r.run_once().await.unwrap();
        assert_eq!(r.ctx.stats().bulletins().len(), 2, "rate-limited");
        assert_eq!(
            r.ctx.counter("route.eval_errors").load(Ordering::Relaxed),
            13
        );
    }
}
