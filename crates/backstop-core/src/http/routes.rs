//! Route names without walking the router each time, for a framework whose only way to
//! a request's route pattern is trying every resource in turn (actix's
//! `match_pattern`, before routing).

use std::cell::RefCell;
use std::rc::Rc;

/// The paths of an app's static routes (those whose pattern is the path itself), as
/// met. Asking a router for a request's pattern can cost a request more than the rest
/// of its start; a static route's path is its pattern, so it is looked up here
/// instead. A dynamic route's paths (`/users/7`) are unbounded and are matched each
/// time. One set per app instance (per worker thread), bounded by the app's static
/// routes (and [`StaticRoutes::MAX`]).
///
/// ```
/// use backstop_core::adapter::StaticRoutes;
///
/// let routes = StaticRoutes::default();
/// assert_eq!(routes.route("/hello", || Some("/hello".into())).as_deref(), Some("/hello"));
/// // Known static: the router is not asked again.
/// assert_eq!(routes.route("/hello", || unreachable!()).as_deref(), Some("/hello"));
/// ```
#[derive(Debug, Default)]
pub struct StaticRoutes {
    paths: RefCell<hashbrown::HashSet<Rc<str>>>,
}

impl StaticRoutes {
    /// The most static paths kept.
    pub const MAX: usize = 4096;

    /// The route of `path`, asking `match_pattern` only for a path not known static.
    pub fn route(
        &self,
        path: &str,
        match_pattern: impl FnOnce() -> Option<String>,
    ) -> Option<RouteName> {
        if let Some(known) = self.paths.borrow().get(path) {
            return Some(RouteName::Static(known.clone()));
        }
        let pattern = match_pattern()?;
        if pattern == path {
            let mut paths = self.paths.borrow_mut();
            if paths.len() < Self::MAX {
                let path: Rc<str> = Rc::from(path);
                paths.insert(path.clone());
                return Some(RouteName::Static(path));
            }
        }
        Some(RouteName::Matched(pattern))
    }

    /// How many static paths are kept.
    pub fn len(&self) -> usize {
        self.paths.borrow().len()
    }

    /// Whether no static path is kept yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A request's route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteName {
    /// A static route's, shared.
    Static(Rc<str>),
    /// A dynamic route's, as the router gave it.
    Matched(String),
}

impl std::ops::Deref for RouteName {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            RouteName::Static(path) => path,
            RouteName::Matched(pattern) => pattern,
        }
    }
}

impl AsRef<str> for RouteName {
    fn as_ref(&self) -> &str {
        self
    }
}
