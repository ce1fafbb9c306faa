//! Shrinking: a failing plan made smaller while it still fails the same
//! way (delta debugging over the steps), so a failure reads in a few steps.

use crate::plan::Step;
use crate::run::{Config, Failure, run_plan};

/// The kind of a failure: its message up to the first detail.
fn kind(f: &Failure) -> &str {
    f.what.split([':', '{', '(']).next().unwrap_or(&f.what)
}

/// Removes chunks of `plan` (halves, quarters, … single steps) while the
/// run still fails with the same kind of failure, trying at most `budget`
/// runs. Returns the indices (into `plan`) of the steps kept, and the
/// failure of the smallest plan.
pub fn shrink(
    cfg: &Config,
    plan: &[Step],
    first: &Failure,
    budget: usize,
) -> (Vec<usize>, Failure) {
    let want = kind(first).to_owned();
    let mut kept: Vec<usize> = (0..plan.len()).collect();
    let mut failure = first.clone();
    let mut runs = 0;
    let mut chunk = kept.len() / 2;
    while chunk >= 1 && runs < budget {
        let mut at = 0;
        let mut removed_any = false;
        while at < kept.len() && runs < budget {
            let end = (at + chunk).min(kept.len());
            let candidate: Vec<usize> = kept[..at].iter().chain(&kept[end..]).copied().collect();
            let steps: Vec<Step> = candidate.iter().map(|&i| plan[i].clone()).collect();
            runs += 1;
            match run_plan(cfg, &steps) {
                Err(f) if kind(&f) == want => {
                    kept = candidate;
                    failure = f;
                    removed_any = true;
                }
                _ => at = end,
            }
        }
        if !removed_any {
            chunk /= 2;
        }
    }
    (kept, failure)
}

/// `0-3,7,9-12`: the ranges of `kept` (what `--keep` reads).
pub fn ranges(kept: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < kept.len() {
        let start = kept[i];
        let mut end = start;
        while i + 1 < kept.len() && kept[i + 1] == end + 1 {
            i += 1;
            end = kept[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// Reads [`ranges`]' form back.
///
/// # Errors
/// A malformed range, naming it.
pub fn parse_ranges(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("--keep: {part:?} is not N or N-M");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_back() {
        let kept = vec![0, 1, 2, 5, 7, 8];
        assert_eq!(ranges(&kept), "0-2,5,7-8");
        assert_eq!(parse_ranges("0-2,5,7-8"), Ok(kept));
        assert!(parse_ranges("3-1").is_err());
        assert!(parse_ranges("x").is_err());
    }
}
