//! A user's own binary: `downstream IMG0 IMG1 TRUNK_FILE` prints the LPIPS distance
//! (AlexNet, v0.1) between two images.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [img0, img1, trunk] = args.as_slice() else {
        eprintln!("usage: downstream IMG0 IMG1 TRUNK_FILE");
        return ExitCode::from(2);
    };
    let result = lpips::Lpips::builder()
        .trunk_file(trunk)
        .build()
        .and_then(|model| model.distance(img0, img1));
    match result {
        Ok(d) => {
            println!("{d}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("downstream: {e}");
            ExitCode::FAILURE
        }
    }
}
