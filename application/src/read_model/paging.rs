//! Keyset pages (docs/decisions/paging.md):
//! a list query fetches one row more than the page holds, so that whether
//! another page follows is known without counting.

/// The first `limit` of `rows` (fetched with `LIMIT limit + 1`), and the
/// cursor of the next page: `key` of the page's last row when more rows
/// followed it, `None` on the last page.
pub(crate) fn split<T, K>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, Option<K>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(key) } else { None };
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn a_page_carries_a_cursor_only_when_more_rows_follow_it() {
        assert_eq!(split(vec![1, 2, 3], 2, |n| *n), (vec![1, 2], Some(2)));
        assert_eq!(split(vec![1, 2], 2, |n| *n), (vec![1, 2], None));
        assert_eq!(split(Vec::<i32>::new(), 2, |n| *n), (vec![], None));
    }
}
