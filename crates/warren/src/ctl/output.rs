//! How `warren ctl` prints what it lists, as rabbitmqctl does: the `table` formatter writes a header row and one
//! row per item, tab-separated (rabbitmqctl's default, which scripts cut and awk); `pretty_table` aligns the columns
//! with spaces; `json` writes rabbitmqctl's JSON stream (`[`, one object per line, later ones led by a comma, `]`).
//! All of it is pure: rows in, text out.

use std::fmt::Write as _;

use serde_json::Value;

/// The output format (`--formatter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Formatter {
    /// A header row, then tab-separated rows: rabbitmqctl's default.
    Table,
    /// The same with columns aligned by spaces, for people.
    #[value(name = "pretty_table")]
    PrettyTable,
    /// rabbitmqctl's JSON: an array with one object per row, keys in column order.
    Json,
}

/// Rows to print: the column names and, per row, one JSON value per column (`Null` when the node did not say).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Rows {
    /// The column names, as rabbitmqctl's info keys.
    pub(crate) columns: Vec<String>,
    /// One value per column, per row.
    pub(crate) rows: Vec<Vec<Value>>,
}

impl Rows {
    /// The text `formatter` makes of these rows; `headers` false drops the header row (`--no-table-headers`).
    pub(crate) fn render(&self, formatter: Formatter, headers: bool) -> String {
        match formatter {
            Formatter::Table => self.render_table(headers, None),
            Formatter::PrettyTable => {
                let widths = self.widths(headers);
                self.render_table(headers, Some(&widths))
            }
            Formatter::Json => self.render_json(),
        }
    }

    /// The cells of each row as text.
    fn cells(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&self.columns)
                    .map(|(value, column)| cell(column, value))
                    .collect()
            })
            .collect()
    }

    /// The widest cell of each column, in characters.
    fn widths(&self, headers: bool) -> Vec<usize> {
        let mut widths: Vec<usize> = if headers {
            self.columns.iter().map(|c| c.chars().count()).collect()
        } else {
            vec![0; self.columns.len()]
        };
        for row in self.cells() {
            for (width, text) in widths.iter_mut().zip(&row) {
                *width = (*width).max(text.chars().count());
            }
        }
        widths
    }

    /// Tab-separated rows, or rows padded to `widths` and separated by two spaces. An empty list prints nothing,
    /// not even the header (as rabbitmqctl).
    fn render_table(&self, headers: bool, widths: Option<&[usize]>) -> String {
        let mut out = String::new();
        if self.rows.is_empty() {
            return out;
        }
        let mut lines: Vec<Vec<String>> = Vec::with_capacity(self.rows.len() + 1);
        if headers {
            lines.push(self.columns.clone());
        }
        lines.extend(self.cells());
        for line in lines {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                match widths {
                    None => {
                        if i > 0 {
                            text.push('\t');
                        }
                        text.push_str(cell);
                    }
                    Some(widths) => {
                        if i > 0 {
                            text.push_str("  ");
                        }
                        let width = widths.get(i).copied().unwrap_or(0);
                        let _ = write!(text, "{cell:<width$}");
                    }
                }
            }
            out.push_str(text.trim_end_matches(' '));
            out.push('\n');
        }
        out
    }

    /// rabbitmqctl's JSON stream: `[`, then `{...}` and `,{...}` lines, then `]`.
    fn render_json(&self) -> String {
        let mut out = String::from("[\n");
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('{');
            for (j, (column, value)) in self.columns.iter().zip(row).enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(column.clone()).to_string());
                out.push(':');
                out.push_str(&value.to_string());
            }
            out.push_str("}\n");
        }
        out.push_str("]\n");
        out
    }
}

/// One cell as rabbitmqctl's table shows it: strings bare, `null` empty, a list as `[a, b]`, a policy
/// `definition` as compact JSON, any other object (arguments, client properties) as an Erlang-style property list
/// `[{"key",value}]`.
pub(crate) fn cell(column: &str, value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|item| cell(column, item)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) if column == "definition" => Value::Object(map.clone()).to_string(),
        Value::Object(map) => {
            let pairs: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{{{},{}}}", Value::String(key.clone()), term(value)))
                .collect();
            format!("[{}]", pairs.join(","))
        }
    }
}

/// A value inside a property list: strings quoted, nested objects as property lists again.
fn term(value: &Value) -> String {
    match value {
        Value::Object(_) => cell("", value),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(term).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn users() -> Rows {
        Rows {
            columns: vec!["user".into(), "tags".into()],
            rows: vec![
                vec![json!("alice"), json!([])],
                vec![json!("guest"), json!(["administrator"])],
            ],
        }
    }

    #[test]
    fn table_is_tab_separated_with_a_header_as_rabbitmqctl() {
        // rabbitmqctl 3.10.8 `list_users` on a node with alice (no tags) and guest.
        assert_eq!(
            users().render(Formatter::Table, true),
            "user\ttags\nalice\t[]\nguest\t[administrator]\n"
        );
        assert_eq!(
            users().render(Formatter::Table, false),
            "alice\t[]\nguest\t[administrator]\n"
        );
    }

    #[test]
    fn pretty_table_aligns_columns() {
        assert_eq!(
            users().render(Formatter::PrettyTable, true),
            "user   tags\nalice  []\nguest  [administrator]\n"
        );
    }

    #[test]
    fn json_is_rabbitmqctls_stream_with_keys_in_column_order() {
        // rabbitmqctl 3.10.8 `list_users --formatter json`.
        assert_eq!(
            users().render(Formatter::Json, true),
            "[\n{\"user\":\"alice\",\"tags\":[]}\n,{\"user\":\"guest\",\"tags\":[\"administrator\"]}\n]\n"
        );
    }

    #[test]
    fn an_empty_list_prints_no_header() {
        let rows = Rows {
            columns: vec!["name".into(), "messages".into()],
            rows: vec![],
        };
        assert_eq!(rows.render(Formatter::Table, true), "");
        assert_eq!(rows.render(Formatter::Json, true), "[\n]\n");
    }

    #[test]
    fn cells_render_as_rabbitmqctl_shows_them() {
        assert_eq!(
            cell("arguments", &json!({"x-max-length": 100})),
            "[{\"x-max-length\",100}]"
        );
        assert_eq!(cell("arguments", &json!({})), "[]");
        assert_eq!(
            cell("definition", &json!({"max-length": 10})),
            "{\"max-length\":10}"
        );
        assert_eq!(cell("durable", &json!(true)), "true");
        assert_eq!(cell("policy", &Value::Null), "");
        assert_eq!(cell("name", &json!("q1")), "q1");
    }
}
