//! The query parameters of list endpoints, applied as `rabbit_mgmt_util` applies them: `sort` (a dotted column,
//! before the default sort by vhost and name) and `sort_reverse`; `columns` (dotted, comma-separated) keeps only
//! those fields; with `page` (and `page_size`, 100 by default, at most 500) the answer is a page object, and
//! `name` (a case-insensitive substring, or with `use_regex=true` a regex) filters the items first. Without
//! `page`, `name` filters nothing, as in RabbitMQ.

use std::cmp::Ordering;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;

/// RabbitMQ's default and largest page sizes.
const DEFAULT_PAGE_SIZE: u64 = 100;
const MAX_PAGE_SIZE: u64 = 500;

/// The query parameters every list endpoint takes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    /// The page to answer, from 1; a page object is answered only when given.
    page: Option<String>,
    /// Items per page.
    page_size: Option<String>,
    /// Filter on the `name` field (paged answers only).
    name: Option<String>,
    /// `true`: `name` is a regex.
    use_regex: Option<String>,
    /// A dotted field to sort by first.
    sort: Option<String>,
    /// `true`: the sorted list reversed.
    sort_reverse: Option<String>,
    /// Comma-separated dotted fields to keep.
    columns: Option<String>,
}

/// Answers `items` (JSON objects) as `query` asks, sorted by `default_sort` after the requested sort.
pub(crate) fn answer(
    mut items: Vec<Value>,
    query: &ListQuery,
    default_sort: &[&str],
) -> Result<Value, ApiError> {
    let pagination = pagination(query)?;
    let mut sorts: Vec<&str> = Vec::new();
    match query.sort.as_deref() {
        // An explicitly empty sort keeps the order as listed.
        Some("") => {}
        Some(sort) => {
            sorts.push(sort);
            sorts.extend(default_sort.iter().filter(|s| **s != sort));
        }
        None => sorts.extend(default_sort),
    }
    if query.sort.as_deref() != Some("") {
        items.sort_by(|a, b| {
            for key in &sorts {
                let order = compare(dotted(a, key), dotted(b, key));
                if order != Ordering::Equal {
                    return order;
                }
            }
            Ordering::Equal
        });
    }
    if query.sort_reverse.as_deref() == Some("true") {
        items.reverse();
    }
    let columns: Option<Vec<&str>> = query
        .columns
        .as_deref()
        .map(|c| c.split(',').filter(|c| !c.is_empty()).collect());
    let project = |item: Value| match &columns {
        Some(columns) => keep_columns(&item, columns),
        None => item,
    };
    let Some((page, page_size)) = pagination else {
        return Ok(Value::Array(items.into_iter().map(project).collect()));
    };
    let total = items.len();
    let filtered: Vec<Value> = match query.name.as_deref().filter(|n| !n.is_empty()) {
        None => items,
        Some(name) => {
            let matcher = NameMatcher::new(name, query.use_regex.as_deref() == Some("true"))?;
            items
                .into_iter()
                .filter(|item| {
                    item.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| matcher.matches(n))
                })
                .collect()
        }
    };
    let filtered_count = filtered.len() as u64;
    let offset = (page - 1).saturating_mul(page_size);
    if offset > filtered_count {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "page_out_of_range",
            format!(
                "Page out of range, page: {page} page size: {page_size}, len: {filtered_count}"
            ),
        ));
    }
    let page_items: Vec<Value> = filtered
        .into_iter()
        .skip(offset as usize)
        .take(page_size as usize)
        .map(project)
        .collect();
    Ok(json!({
        "filtered_count": filtered_count,
        "item_count": page_items.len(),
        "items": page_items,
        "page": page,
        "page_count": filtered_count.div_ceil(page_size),
        "page_size": page_size,
        "total_count": total,
    }))
}

/// The page and page size asked for, checked as RabbitMQ checks them.
fn pagination(query: &ListQuery) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(page) = &query.page else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Pagination parameters are invalid",
        )
    };
    let page: i64 = page.parse().map_err(|_| invalid())?;
    let size: i64 = match &query.page_size {
        None => DEFAULT_PAGE_SIZE as i64,
        Some(size) => size.parse().map_err(|_| invalid())?,
    };
    if page <= 0 || size <= 0 || size as u64 > MAX_PAGE_SIZE {
        // RabbitMQ names the page size as given: `undefined` when the query had none.
        let given = match &query.page_size {
            Some(_) => size.to_string(),
            None => "undefined".to_owned(),
        };
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_pagination_parameters",
            format!("Invalid pagination parameters: page number {page}, page size {given}"),
        ));
    }
    Ok(Some((page as u64, size as u64)))
}

/// The `name` filter: a case-insensitive substring, or a case-insensitive regex.
enum NameMatcher {
    Substring(String),
    Regex(fancy_regex::Regex),
}

impl NameMatcher {
    fn new(name: &str, regex: bool) -> Result<NameMatcher, ApiError> {
        if !regex {
            return Ok(NameMatcher::Substring(name.to_lowercase()));
        }
        fancy_regex::Regex::new(&format!("(?i){name}"))
            .map(NameMatcher::Regex)
            .map_err(|e| ApiError::bad_request(format!("invalid regex: {e}")))
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            NameMatcher::Substring(s) => name.to_lowercase().contains(s.as_str()),
            NameMatcher::Regex(r) => r.is_match(name).unwrap_or(false),
        }
    }
}

/// The value at the dotted path `key` of `item`.
fn dotted<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(item, |value, part| value.get(part))
}

/// Orders JSON values as Erlang orders the terms they come from: numbers before atoms (booleans) before strings;
/// missing values first.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Number(_)) => 1,
            Some(Value::Bool(_)) => 2,
            Some(Value::Object(_)) => 3,
            Some(Value::Array(_)) => 4,
            Some(Value::String(_)) => 5,
        }
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// `item` with only `columns` (dotted paths keep the nesting: `message_stats.publish`).
fn keep_columns(item: &Value, columns: &[&str]) -> Value {
    let mut out = Map::new();
    for column in columns {
        let Some(value) = dotted(item, column) else {
            continue;
        };
        let parts: Vec<&str> = column.split('.').collect();
        insert_path(&mut out, &parts, value.clone());
    }
    Value::Object(out)
}

fn insert_path(out: &mut Map<String, Value>, parts: &[&str], value: Value) {
    match parts {
        [] => {}
        [last] => {
            out.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = out
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = entry {
                insert_path(map, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &str) -> ListQuery {
        serde_json::from_value(serde_json::from_str(pairs).unwrap()).unwrap()
    }

    fn items() -> Vec<Value> {
        ["amq.direct", "b", "amq.topic", "a"]
            .iter()
            .map(|n| json!({"vhost": "/", "name": n, "type": "direct", "stats": {"n": n.len()}}))
            .collect()
    }

    #[test]
    fn lists_sorted_by_vhost_and_name_without_paging() {
        let answer = answer(items(), &ListQuery::default(), &["vhost", "name"]).unwrap();
        let names: Vec<&str> = answer
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "amq.direct", "amq.topic", "b"]);
    }

    #[test]
    fn pages_filter_by_name_and_keep_columns() {
        let q = query(r#"{"page":"1","page_size":"1","name":"AMQ","columns":"name,stats.n"}"#);
        let answer = answer(items(), &q, &["vhost", "name"]).unwrap();
        assert_eq!(
            answer,
            json!({"filtered_count": 2, "item_count": 1, "items": [{"name": "amq.direct", "stats": {"n": 10}}],
                   "page": 1, "page_count": 2, "page_size": 1, "total_count": 4})
        );
    }

    #[test]
    fn sorts_by_a_requested_column_reversed() {
        let q = query(r#"{"sort":"stats.n","sort_reverse":"true","columns":"name"}"#);
        let answer = answer(items(), &q, &["vhost", "name"]).unwrap();
        assert_eq!(
            answer,
            json!([{"name": "amq.direct"}, {"name": "amq.topic"}, {"name": "b"}, {"name": "a"}])
        );
    }

    #[test]
    fn a_page_past_the_end_is_refused_as_rabbitmq_refuses_it() {
        let error = answer(items(), &query(r#"{"page":"9"}"#), &["name"]).unwrap_err();
        assert!(format!("{error:?}").contains("page_out_of_range"));
        assert!(answer(items(), &query(r#"{"page":"0"}"#), &["name"]).is_err());
        let regex = query(r#"{"page":"1","name":"^a$","use_regex":"true"}"#);
        assert_eq!(
            answer(items(), &regex, &["name"]).unwrap()["filtered_count"],
            1
        );
    }
}
