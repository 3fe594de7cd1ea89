//! On a CUDA device (feature `cuda-tests`; `scripts/gpu_check.sh` builds and runs these on
//! a GPU machine): the reference's outputs in f32, the half precisions within their
//! bounds, gradients, and handles shared across threads.

use crate::common::{LINS, assert_close, oracle_file, read_tensors};
use lpips::{Device, Lpips, Net, Precision};

fn cuda() -> Device {
    assert!(
        tch::Cuda::is_available(),
        "cuda-tests need a CUDA device and a CUDA libtorch"
    );
    Device::Cuda(0)
}

// alex and squeeze only: their oracle files are small enough to carry to a GPU machine.
const NETS: [Net; 2] = [Net::Alex, Net::Squeeze];

fn model(net: Net, lin: lpips::Lin, precision: Precision) -> Lpips {
    Lpips::builder()
        .net(net)
        .lin(lin)
        .precision(precision)
        .device(cuda())
        .trunk_file(oracle_file(&format!("trunk_{}.safetensors", net.name())))
        .build()
        .unwrap()
}

#[test]
fn f32_matches_reference_on_cuda() {
    for net in NETS {
        let oracle = read_tensors(&format!("outputs_{}.safetensors", net.name()));
        for (lin, label) in LINS {
            let m = model(net, lin, Precision::F32);
            let out = m.forward_layers(&oracle["in0"], &oracle["in1"]).unwrap();
            assert_eq!(out.total.device(), cuda());
            // cuDNN sums in other orders than the CPU: same tolerance, measured anyway.
            assert_close(
                &out.total.to_device(Device::Cpu),
                &oracle[&format!("{label}/scalar")],
                &format!("cuda {net} {label}"),
            );
        }
    }
}

#[test]
fn half_precisions_on_cuda() {
    for net in NETS {
        let oracle = read_tensors(&format!("outputs_{}.safetensors", net.name()));
        let want = Vec::<f32>::try_from(oracle["v0.1/scalar"].flatten(0, -1)).unwrap();
        for (precision, rel, abs) in [(Precision::F16, 2e-3, 1e-5), (Precision::BF16, 1e-2, 1e-4)] {
            let got = model(net, lpips::Lin::V0_1, precision)
                .distances(&oracle["in0"], &oracle["in1"])
                .unwrap();
            for (g, w) in got.iter().zip(&want) {
                let err = f64::from((g - w).abs());
                eprintln!("cuda {precision:?} {net}: {g} vs {w} (error {err:.2e})");
                assert!(
                    err <= abs + rel * f64::from(w.abs()),
                    "{precision:?} {net}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn gradients_and_threads_on_cuda() {
    let oracle = read_tensors("outputs_alex.safetensors");
    let m = model(Net::Alex, lpips::Lin::V0_1, Precision::F32);
    let x = oracle["in0"].to_device(cuda()).set_requires_grad(true);
    m.forward(&x, &oracle["in1"])
        .unwrap()
        .sum(tch::Kind::Float)
        .backward();
    assert_close(
        &x.grad().to_device(Device::Cpu),
        &oracle["v0.1/grad_in0"],
        "cuda gradient",
    );
    let single = m.distances(&oracle["in0"], &oracle["in1"]).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let h = m.share();
            let (a, b) = (oracle["in0"].copy(), oracle["in1"].copy());
            let single = single.clone();
            s.spawn(move || assert_eq!(h.distances(&a, &b).unwrap(), single));
        }
    });
}
