// The README's first program ("3. First call"), runnable:
// `cargo run --example first_call` in a folder with a.png, b.png, ref.png, p0.png and
// p1.png, and VGG16's torchvision checkpoint vgg16-397923af.pth. When a call fails,
// `main` prints the error's message with its fix (tests/first_call.rs runs it offline
// with no weights cached).

use lpips::{Lin, Lpips, Net};

fn main() -> Result<(), lpips::LpipsError> {
    // AlexNet, v0.1 heads: the reference's defaults. Lower is more similar.
    let d = lpips::distance("a.png", "b.png")?;
    println!("{d}");

    // Keep a model to compare many images; choose the trunk, heads and weights.
    let model = Lpips::builder()
        .net(Net::Vgg)
        .lin(Lin::V0_1)
        .trunk_file("vgg16-397923af.pth")
        .build()?;
    for candidate in ["p0.png", "p1.png"] {
        println!("{candidate}: {}", model.distance("ref.png", candidate)?);
    }
    let map = model.distance_map("ref.png", "p0.png")?; // H x W, its mean is the distance
    lpips::maps::write_heatmap("map.png", &map, None)?;
    Ok(())
}
