//! Whole-model files: a `lpips.LPIPS`-style state dict holding the trunk
//! (`net.slice{k}.{i}.weight|bias`, and `filt` for blur-pools), the linear heads
//! (`lin{k}.model.1.weight`; `lins.{k}.*` is the same module under its list's name) and
//! the scaling layer (`scaling_layer.shift|scale`). Loaded strictly: every tensor the
//! model needs must be there with its shape, and anything else is reported.

use std::collections::{BTreeSet, HashMap};

use tch::Tensor;

use super::TensorMap;
use crate::error::{Result, WeightProblem};
use crate::trunk::TrunkSpec;

/// A whole model's tensors, checked and converted to f32.
pub(crate) struct WholeModel {
    /// The trunk under torchvision's names (`features.{i}.*`), as the trunk's variables.
    pub(crate) trunk: Vec<(String, Tensor)>,
    /// One `(1, C, 1, 1)` head per tap.
    pub(crate) heads: Vec<Tensor>,
    /// `scaling_layer.shift` and `scaling_layer.scale`, `(1, 3, 1, 1)` each.
    pub(crate) shift: Tensor,
    pub(crate) scale: Tensor,
}

/// The name `lpips.LPIPS` gives a trunk variable `features.{i}.{param}`: the slice that
/// holds layer `i` (slices end at the taps), numbered from one.
fn slice_name(spec: &TrunkSpec, name: &str) -> Option<String> {
    let rest = name.strip_prefix("features.")?;
    let (index, param) = rest.split_once('.')?;
    let i: usize = index.parse().ok()?;
    let k = spec.taps.iter().position(|&end| i < end)? + 1;
    Some(format!("net.slice{k}.{i}.{param}"))
}

fn head_name(k: usize) -> String {
    format!("lin{k}.model.1.weight")
}

fn head_list_name(k: usize) -> String {
    format!("lins.{k}.model.1.weight")
}

/// Checks the file against the model, strictly, then reads it. `vars` are the trunk's
/// variables (names and shapes).
pub(crate) fn load(
    spec: &TrunkSpec,
    vars: &HashMap<String, Tensor>,
    source: &mut TensorMap,
) -> Result<WholeModel> {
    let mut wanted: Vec<(String, Vec<i64>)> = Vec::new();
    for (name, var) in vars {
        let stored = slice_name(spec, name).ok_or_else(|| {
            WeightProblem::Format {
                reason: format!("the trunk's variable {name} lies past its last tap"),
            }
            .at(&source.source_name)
        })?;
        source.alias(name, &stored);
        wanted.push((stored, var.size()));
    }
    let heads: Vec<(usize, Vec<i64>)> = spec
        .channels
        .iter()
        .enumerate()
        .map(|(k, &c)| (k, vec![1, c, 1, 1]))
        .collect();
    for (k, shape) in &heads {
        wanted.push((head_name(*k), shape.clone()));
    }
    for name in ["scaling_layer.shift", "scaling_layer.scale"] {
        wanted.push((name.to_string(), vec![1, 3, 1, 1]));
    }
    wanted.sort();

    let present: BTreeSet<String> = source.names().into_iter().collect();
    // A torchvision trunk (`features.*`, no `net.slice*`): say what file is needed
    // rather than list every tensor it lacks.
    if present.contains("features.0.weight") && !present.iter().any(|n| n.starts_with("net.")) {
        return Err(WeightProblem::NotAWholeModel {
            published: match spec.holds {
                crate::trunk::Holds::WholeModel { .. } => Some(spec.published.file_name),
                crate::trunk::Holds::Trunk { .. } => None,
            },
        }
        .at(&source.source_name));
    }
    // `lins.{k}` may stand in for `lin{k}`, or sit beside it (torch saves both names).
    let mut missing = Vec::new();
    for (name, shape) in &wanted {
        let list_name = heads
            .iter()
            .find(|(k, _)| head_name(*k) == *name)
            .map(|(k, _)| head_list_name(*k));
        match list_name {
            Some(alt) if !present.contains(name) && present.contains(&alt) => {
                source.alias(name, &alt);
            }
            _ if !present.contains(name) => missing.push(format!("{name} {shape:?}")),
            _ => {}
        }
    }
    let known: BTreeSet<String> = wanted
        .iter()
        .map(|(n, _)| n.clone())
        .chain(heads.iter().map(|(k, _)| head_list_name(*k)))
        .collect();
    let unexpected: Vec<String> = present.difference(&known).cloned().collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(WeightProblem::ModelKeys {
            missing,
            unexpected,
        }
        .at(&source.source_name));
    }
    // Every shape before any tensor is copied out.
    for (name, shape) in &wanted {
        source.check(name, shape)?;
    }
    for (k, shape) in &heads {
        if present.contains(&head_list_name(*k)) {
            source.check(&head_list_name(*k), shape)?;
        }
    }

    let mut trunk = Vec::with_capacity(vars.len());
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        trunk.push((name.clone(), source.take(name, &vars[name].size())?));
    }
    let mut head_tensors = Vec::with_capacity(heads.len());
    for (k, shape) in &heads {
        let head = source.take(&head_name(*k), shape)?;
        let list_name = head_list_name(*k);
        if present.contains(&list_name) && source.stored_name(&head_name(*k)) != list_name {
            let other = source.take(&list_name, shape)?;
            if !head.f_equal(&other)? {
                return Err(WeightProblem::Format {
                    reason: format!(
                        "{} and {list_name} differ (they are one module in lpips.LPIPS)",
                        head_name(*k)
                    ),
                }
                .at(&source.source_name));
            }
        }
        head_tensors.push(head);
    }
    Ok(WholeModel {
        trunk,
        heads: head_tensors,
        shift: source.take("scaling_layer.shift", &[1, 3, 1, 1])?,
        scale: source.take("scaling_layer.scale", &[1, 3, 1, 1])?,
    })
}
