//! 2AFC and JND scores.
//!
//! Each computes what the reference's `lpips/trainer.py` (`score_2afc_dataset`,
//! `score_jnd_dataset`) and `lpips/__init__.py` (`voc_ap`) compute, with NumPy's order of
//! summation where it could change the last bit, so that the same inputs give the same
//! scores.

use std::cmp::Ordering;

/// Per-triplet 2AFC agreement.
///
/// For each triplet, the fraction of people the distances agree with:
/// `(d0 < d1) * (1 - judge) + (d1 < d0) * judge + (d0 == d1) * 0.5`, where `judge` is the
/// fraction who preferred `p1`. An exact tie scores one half whatever the people said.
/// NaN inputs give what that formula gives (a NaN distance agrees with nobody; a NaN
/// judgement gives NaN).
///
/// Returns an empty vector when the three slices differ in length.
pub fn two_afc_scores(d0: &[f64], d1: &[f64], judge: &[f64]) -> Vec<f64> {
    if d0.len() != d1.len() || d0.len() != judge.len() {
        return Vec::new();
    }
    d0.iter()
        .zip(d1)
        .zip(judge)
        .map(|((&a, &b), &j)| {
            f64::from(u8::from(a < b)) * (1.0 - j)
                + f64::from(u8::from(b < a)) * j
                + f64::from(u8::from(a == b)) * 0.5
        })
        .collect()
}

/// Mean 2AFC agreement.
///
/// The mean of [`two_afc_scores`]: the reference's 2AFC score, in [0, 1] (the people's
/// own consistency bounds it from above, not 1).
///
/// Returns NaN when there are no triplets or the slices differ in length.
pub fn two_afc_score(d0: &[f64], d1: &[f64], judge: &[f64]) -> f64 {
    let scores = two_afc_scores(d0, d1, judge);
    if scores.is_empty() {
        return f64::NAN;
    }
    numpy_sum(&scores) / scores.len() as f64
}

/// JND mAP.
///
/// Pairs are sorted by distance, most alike first; each pair counts `same` true
/// positives and `1 - same` false positives, and the area under the resulting
/// precision-recall curve ([`voc_ap`]) is the score: how well the distance ranks the pairs
/// people could not tell apart before those they could.
///
/// The sort is stable and puts NaN distances last. The reference uses NumPy's default
/// `argsort`, which is not stable: pairs with exactly equal distances (such as several
/// identical pairs, all at 0) may come in another order there, which changes the score
/// only when their `same` fractions differ.
///
/// Returns NaN when there are no pairs or the slices differ in length (the reference
/// would give 0 for no pairs). When no pair was judged the same at all, recall is 0/0 and
/// the score NaN, as in the reference.
pub fn jnd_map(ds: &[f64], sames: &[f64]) -> f64 {
    if ds.is_empty() || ds.len() != sames.len() {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..ds.len()).collect();
    order.sort_by(|&a, &b| nan_last(ds[a], ds[b]));
    let sorted: Vec<f64> = order.iter().map(|&i| sames[i]).collect();
    let total = numpy_sum(&sorted);
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut precs = Vec::with_capacity(sorted.len());
    let mut recs = Vec::with_capacity(sorted.len());
    for &same in &sorted {
        tp += same;
        fp += 1.0 - same;
        precs.push(tp / (tp + fp));
        recs.push(tp / (tp + (total - tp)));
    }
    voc_ap(&recs, &precs)
}

/// VOC average precision.
///
/// The PASCAL VOC area under a precision-recall curve (the reference's `voc_ap` without
/// its 11-point option): recall runs from 0 to 1 with sentinels added at both ends,
/// precision is replaced by its running maximum from the right (the envelope), and the
/// area sums `(change in recall) * precision` where recall changes. NaN values propagate
/// as in NumPy.
///
/// Empty inputs give 0, as in the reference. Returns NaN when the slices differ in
/// length.
pub fn voc_ap(rec: &[f64], prec: &[f64]) -> f64 {
    if rec.len() != prec.len() {
        return f64::NAN;
    }
    let mrec: Vec<f64> = std::iter::once(0.0)
        .chain(rec.iter().copied())
        .chain(std::iter::once(1.0))
        .collect();
    let mut mpre: Vec<f64> = std::iter::once(0.0)
        .chain(prec.iter().copied())
        .chain(std::iter::once(0.0))
        .collect();
    for i in (1..mpre.len()).rev() {
        mpre[i - 1] = numpy_maximum(mpre[i - 1], mpre[i]);
    }
    let terms: Vec<f64> = (0..mrec.len() - 1)
        .filter(|&i| mrec[i + 1] != mrec[i])
        .map(|i| (mrec[i + 1] - mrec[i]) * mpre[i + 1])
        .collect();
    numpy_sum(&terms)
}

/// `f64` ordering as NumPy sorts: NaN after everything, and equal to other NaNs.
fn nan_last(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (false, true) => Ordering::Less,
        (true, false) => Ordering::Greater,
        (true, true) => Ordering::Equal,
    }
}

/// `np.maximum`: NaN wins (`f64::max` would drop it).
fn numpy_maximum(a: f64, b: f64) -> f64 {
    if a.is_nan() || a >= b { a } else { b }
}

/// `np.sum` of a contiguous f64 array: the reduction's identity plus NumPy's pairwise
/// summation (eight running sums over blocks of up to 128 values, halves above that), so
/// that sums, and the recall values and means made from them, agree with the reference
/// to the last bit (checked against NumPy 2.4 on random data of wide dynamic range).
fn numpy_sum(a: &[f64]) -> f64 {
    0.0 + pairwise_sum(a)
}

fn pairwise_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        a.iter().fold(-0.0, |acc, &x| acc + x)
    } else if n <= BLOCK {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (acc, &x) in r.iter_mut().zip(chunk) {
                *acc += x;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_score_half() {
        assert_eq!(two_afc_scores(&[1.0], &[1.0], &[0.8]), vec![0.5]);
        assert_eq!(two_afc_score(&[1.0, 2.0], &[2.0, 1.0], &[0.2, 0.2]), 0.5);
    }

    #[test]
    fn empty_and_mismatched_inputs() {
        assert!(two_afc_score(&[], &[], &[]).is_nan());
        assert!(two_afc_score(&[1.0], &[2.0], &[]).is_nan());
        assert!(two_afc_scores(&[1.0], &[2.0, 3.0], &[0.0]).is_empty());
        assert!(jnd_map(&[], &[]).is_nan());
        assert!(jnd_map(&[1.0], &[]).is_nan());
        assert_eq!(voc_ap(&[], &[]), 0.0);
        assert!(voc_ap(&[1.0], &[]).is_nan());
    }

    #[test]
    fn perfect_ranking_has_map_one() {
        assert_eq!(jnd_map(&[0.1, 0.2, 0.9, 0.8], &[1.0, 1.0, 0.0, 0.0]), 1.0);
    }

    #[test]
    fn pairwise_sum_is_exact_on_integers() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(numpy_sum(&values), 500_500.0);
        assert_eq!(numpy_sum(&[]), 0.0);
    }
}
