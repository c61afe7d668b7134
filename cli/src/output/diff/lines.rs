//! A line diff for multi-line string values (a ConfigMap's config file), so a one-line
//! change in a 200-line file shows as that line and a few around it instead of two
//! 200-line blobs.
//!
//! Common leading and trailing lines are set aside first (most edits touch a few lines
//! in the middle); what remains is compared with a longest-common-subsequence table.
//! That table is quadratic, so above [`MAX_CELLS`] the diff gives up and the caller
//! shows both values whole: the agent caps values at 8 KiB, so "whole" stays bounded.

/// Largest LCS table (lines before × lines after, after trimming common ends): 4 MiB
/// of `u32`, well under a second.
pub const MAX_CELLS: usize = 1 << 20;

/// How many unchanged lines are shown around each change.
pub const CONTEXT: usize = 2;

/// One line of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// The edit script turning `before` into `after`, removals before additions within a
/// changed block; `None` when the differing middle is too large to compare.
pub fn diff<'a>(before: &[&'a str], after: &[&'a str]) -> Option<Vec<Line<'a>>> {
    let prefix = before.iter().zip(after).take_while(|(a, b)| a == b).count();
    let (b_rest, a_rest) = (&before[prefix..], &after[prefix..]);
    let suffix = b_rest
        .iter()
        .rev()
        .zip(a_rest.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let old = &b_rest[..b_rest.len() - suffix];
    let new = &a_rest[..a_rest.len() - suffix];
    let (n, m) = (old.len(), new.len());
    if n.saturating_mul(m) > MAX_CELLS {
        return None;
    }
    // lcs[i * (m + 1) + j]: length of the longest common subsequence of old[i..], new[j..].
    let w = m + 1;
    let mut lcs = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * w + j] = if old[i] == new[j] {
                lcs[(i + 1) * w + j + 1] + 1
            } else {
                lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
            };
        }
    }
    let mut out: Vec<Line<'a>> = before[..prefix].iter().map(|l| Line::Same(l)).collect();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            out.push(Line::Same(old[i]));
            i += 1;
            j += 1;
        } else if j == m || (i < n && lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
            out.push(Line::Removed(old[i]));
            i += 1;
        } else {
            out.push(Line::Added(new[j]));
            j += 1;
        }
    }
    out.extend(b_rest[b_rest.len() - suffix..].iter().map(|l| Line::Same(l)));
    Some(out)
}

/// What is printed of a diff: changed lines with up to [`CONTEXT`] unchanged lines
/// around them, `None` marking where unchanged lines were left out.
pub fn hunks<'a>(lines: &[Line<'a>]) -> Vec<Option<Line<'a>>> {
    let changed: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !matches!(l, Line::Same(_)))
        .map(|(i, _)| i)
        .collect();
    let near_change = |i: usize| {
        // The first changed line at or after i - CONTEXT, within CONTEXT of i.
        let from = i.saturating_sub(CONTEXT);
        let k = changed.partition_point(|&c| c < from);
        changed.get(k).is_some_and(|&c| c <= i + CONTEXT)
    };
    let mut out = Vec::new();
    let mut skipped = false;
    for (i, line) in lines.iter().enumerate() {
        if matches!(line, Line::Same(_)) && !near_change(i) {
            skipped = true;
            continue;
        }
        if skipped && !out.is_empty() {
            out.push(None);
        }
        skipped = false;
        out.push(Some(*line));
    }
    if skipped && !out.is_empty() {
        out.push(None);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Line::*;

    fn lines(s: &str) -> Vec<&str> {
        s.lines().collect()
    }

    #[test]
    fn one_changed_line_among_unchanged_ones() {
        let d = diff(&lines("a\nb\nc"), &lines("a\nB\nc")).unwrap();
        assert_eq!(d, [Same("a"), Removed("b"), Added("B"), Same("c")]);
    }

    #[test]
    fn insertions_and_deletions_in_the_middle_are_minimal() {
        let d = diff(&lines("a\nx\nb\nc\nd"), &lines("a\nb\nc\ny\nd")).unwrap();
        assert_eq!(
            d,
            [
                Same("a"),
                Removed("x"),
                Same("b"),
                Same("c"),
                Added("y"),
                Same("d")
            ]
        );
    }

    #[test]
    fn an_absent_value_is_all_additions() {
        assert_eq!(diff(&[], &lines("a\nb")).unwrap(), [Added("a"), Added("b")]);
        assert_eq!(diff(&lines("a"), &[]).unwrap(), [Removed("a")]);
    }

    #[test]
    fn a_large_middle_gives_up_but_large_common_ends_do_not() {
        let old: Vec<String> = (0..2000).map(|i| format!("old {i}")).collect();
        let new: Vec<String> = (0..2000).map(|i| format!("new {i}")).collect();
        let (old, new): (Vec<&str>, Vec<&str>) = (
            old.iter().map(String::as_str).collect(),
            new.iter().map(String::as_str).collect(),
        );
        assert_eq!(diff(&old, &new), None);
        // The same sizes, one line apart: the common ends are set aside first.
        let mut edited = old.clone();
        edited[1000] = "changed";
        let d = diff(&old, &edited).unwrap();
        assert_eq!(d.iter().filter(|l| !matches!(l, Same(_))).count(), 2);
    }

    #[test]
    fn hunks_keep_two_lines_of_context_and_mark_gaps() {
        let old = lines("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12");
        let mut new = old.clone();
        new[0] = "one";
        new[9] = "ten";
        let d = diff(&old, &new).unwrap();
        let shown: Vec<String> = hunks(&d)
            .iter()
            .map(|l| match l {
                None => "...".to_string(),
                Some(Same(s)) => format!(" {s}"),
                Some(Removed(s)) => format!("-{s}"),
                Some(Added(s)) => format!("+{s}"),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "-1", "+one", " 2", " 3", "...", " 8", " 9", "-10", "+ten", " 11", " 12"
            ]
        );
    }

    #[test]
    fn a_gap_at_the_end_is_marked() {
        let old = lines("a\nb\nc\nd\ne\nf");
        let mut new = old.clone();
        new[0] = "A";
        let shown = hunks(&diff(&old, &new).unwrap());
        assert_eq!(shown.len(), 5, "{shown:?}");
        assert_eq!(shown.last(), Some(&None));
    }
}
