//! Whole-model checkpoints of plain LPIPS: `torch.save`d `lpips.LPIPS` state dicts of
//! seeded random models (trunk, heads and scaling layer of their own), written by
//! `scripts/gen_stlpips.py`, give the reference's distances; loading is strict.

use crate::common::{assert_close, oracle_file};
use lpips::weights::WeightProblem;
use lpips::{Lpips, LpipsError, Net, Tensor};

fn outputs() -> std::collections::HashMap<String, Tensor> {
    Tensor::read_safetensors(oracle_file("stlpips/model_outputs.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn whole_model_files_give_the_reference_distances() {
    let o = outputs();
    for net in Net::ALL {
        let path = oracle_file(&format!("stlpips/model_{}.pth", net.name()));
        let (in0, in1) = (&o[&format!("{net}/in0")], &o[&format!("{net}/in1")]);
        let model = Lpips::builder().net(net).model_file(&path).build().unwrap();
        let got = model.forward(in0, in1).unwrap();
        assert_close(
            &got,
            &o[&format!("{net}/scalar")],
            &format!("{net} model file"),
        );
        let spatial = Lpips::builder()
            .net(net)
            .model_file(&path)
            .spatial(true)
            .build()
            .unwrap();
        let got = spatial.forward(in0, in1).unwrap();
        assert_close(&got, &o[&format!("{net}/spatial")], &format!("{net} map"));
    }
    // Heads stored under the module list's names only (`lins.{k}`) serve as well.
    let path = oracle_file("stlpips/model_alex_lins_only.pth");
    let model = Lpips::builder().model_file(path).build().unwrap();
    let got = model.forward(&o["alex/in0"], &o["alex/in1"]).unwrap();
    assert_close(&got, &o["alex/scalar"], "alex lins only");
}

#[test]
fn whole_model_files_are_strict() {
    let err = Lpips::builder()
        .model_file(oracle_file("stlpips/model_alex_extra_key.pth"))
        .build()
        .unwrap_err();
    match &err {
        LpipsError::Weights {
            problem:
                WeightProblem::ModelKeys {
                    missing,
                    unexpected,
                },
            ..
        } => {
            assert!(missing.is_empty(), "{err}");
            assert_eq!(unexpected, &["extra.weight".to_string()], "{err}");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("unexpected extra.weight"), "{err}");
    let err = Lpips::builder()
        .model_file(oracle_file("stlpips/model_alex_missing_key.pth"))
        .build()
        .unwrap_err();
    match &err {
        LpipsError::Weights {
            problem:
                WeightProblem::ModelKeys {
                    missing,
                    unexpected,
                },
            ..
        } => {
            assert_eq!(missing, &["net.slice3.6.bias [384]".to_string()], "{err}");
            assert!(unexpected.is_empty(), "{err}");
        }
        other => panic!("{other}"),
    }
    // Another trunk's model: every mismatch in the fields, the first four in the message.
    let err = Lpips::builder()
        .net(Net::Vgg)
        .model_file(oracle_file("stlpips/model_alex.pth"))
        .build()
        .unwrap_err();
    match &err {
        LpipsError::Weights {
            problem:
                WeightProblem::ModelKeys {
                    missing,
                    unexpected,
                },
            ..
        } => {
            assert!(missing.len() > 4 && unexpected.len() > 4, "{err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("{} and {} more", missing[3], missing.len() - 4)),
                "{text}"
            );
            assert!(!text.contains(&missing[4]), "{text}");
        }
        other => panic!("{other}"),
    }
    // A trunk-only file is no whole model, and the message says where it goes; a trunk
    // source beside a model file is refused.
    let err = Lpips::builder()
        .model_file(oracle_file("trunk_alex.safetensors"))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            LpipsError::Weights {
                problem: WeightProblem::NotAWholeModel { published: None },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().ends_with(
            "holds a torchvision trunk only, but `LpipsBuilder::model_file` reads a whole \
             `lpips.LPIPS` state dict (trunk, heads and scaling layer): give this file with \
             `LpipsBuilder::trunk_file` instead"
        ),
        "{err}"
    );
    let err = Lpips::builder()
        .model_file(oracle_file("stlpips/model_alex.pth"))
        .trunk_file(oracle_file("trunk_alex.safetensors"))
        .build()
        .unwrap_err();
    assert!(matches!(err, LpipsError::Conflict { .. }), "{err}");
    assert!(
        err.to_string().contains("replaces the trunk source"),
        "{err}"
    );
    // The other way round: a whole model given as the trunk.
    let err = Lpips::builder()
        .trunk_file(oracle_file("stlpips/model_alex.pth"))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            LpipsError::Weights {
                problem: WeightProblem::WholeModelAsTrunk,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("LpipsBuilder::model_file"),
        "{err}"
    );
}
