//! One model, four threads: each thread takes a handle with `Lpips::share` (the weights
//! are shared, not copied) and gets exactly the single-thread results.

use crate::common;

use lpips::{Lin, Net};

#[test]
fn four_threads_get_single_thread_results() {
    let oracle = common::read_tensors("outputs_alex.safetensors");
    let model = common::model(Net::Alex, Lin::V0_1);
    let (in0, in1) = (&oracle["in0"], &oracle["in1"]);
    let single = model.distances(in0, in1).unwrap();
    let weights_before = model.weights()[0].data_ptr();
    let results: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let m = model.share();
                assert_eq!(
                    m.weights()[0].data_ptr(),
                    weights_before,
                    "shared, not copied"
                );
                let (a, b) = (in0.copy(), in1.copy());
                s.spawn(move || (0..5).map(|_| m.distances(&a, &b).unwrap()).collect())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for per_thread in results {
        for got in per_thread {
            assert_eq!(got, single);
        }
    }
}
