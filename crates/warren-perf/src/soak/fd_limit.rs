//! The tool's own limit on open files: every idle connection is a socket, and the usual soft limit of 1,024 would
//! stop a soak at a thousand connections. At start the soft limit is raised to the hard limit; if even that is
//! below what the run needs, the run is refused with the figures, before anything connects.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft `RLIMIT_NOFILE` to the hard one and returns the new soft limit (`None`: unlimited).
pub(crate) fn raise() -> Result<Option<u64>, String> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return Ok(limit.current);
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised)
        .map_err(|e| format!("cannot raise the open files limit: {e}"))?;
    Ok(limit.maximum)
}

/// Refuses a run needing `needed` descriptors under a soft limit `limit`.
pub(crate) fn check(limit: Option<u64>, needed: u64) -> Result<(), String> {
    match limit {
        Some(limit) if limit < needed => Err(format!(
            "this run needs about {needed} open files and the limit is {limit} (raised to the hard limit): \
             raise it (ulimit -n, LimitNOFILE=) or ask for fewer --idle-connections"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise().expect("raising to the hard limit is always allowed");
        assert_eq!(limit, getrlimit(Resource::Nofile).maximum);
        assert_eq!(getrlimit(Resource::Nofile).current, limit);
    }

    #[test]
    fn a_limit_below_the_need_is_refused() {
        assert!(check(Some(1024), 10_100).is_err());
        assert!(check(Some(20_000), 10_100).is_ok());
        assert!(check(None, 10_100).is_ok());
    }
}
