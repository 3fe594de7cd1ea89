//! 2AFC and JND scores.

/// Per-triplet 2AFC agreement.
pub fn two_afc_scores(d0: &[f64], d1: &[f64], judge: &[f64]) -> Vec<f64> {
    let _ = (d0, d1, judge);
    unimplemented!("helper")
}

/// Mean 2AFC agreement.
pub fn two_afc_score(d0: &[f64], d1: &[f64], judge: &[f64]) -> f64 {
    let _ = (d0, d1, judge);
    unimplemented!("helper")
}

/// JND mAP.
pub fn jnd_map(ds: &[f64], sames: &[f64]) -> f64 {
    let _ = (ds, sames);
    unimplemented!("helper")
}

/// VOC average precision.
pub fn voc_ap(rec: &[f64], prec: &[f64]) -> f64 {
    let _ = (rec, prec);
    unimplemented!("helper")
}
