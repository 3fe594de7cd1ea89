#!/usr/bin/env python3
"""Makes the example images in assets/ from scikit-image's sample photograph
`chelsea.png` (Chelsea the cat, CC0 by Stefan van der Walt), as shipped inside the
scikit-image 0.26.0 wheel on PyPI. Run once; the outputs are committed.

  pip download --no-deps scikit-image==0.26.0 && unzip -j scikit_image-*.whl skimage/data/chelsea.png
  python scripts/make_assets.py chelsea.png
"""

import io
import os
import sys

from PIL import Image, ImageFilter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "assets")

src = Image.open(sys.argv[1]).convert("RGB")
ref = src.resize((320, 213), Image.LANCZOS)
ref.save(os.path.join(OUT, "ex_ref.png"), optimize=True)
# p0: a mild distortion (Gaussian blur); p1: a strong one (heavy JPEG compression).
ref.filter(ImageFilter.GaussianBlur(1.0)).save(os.path.join(OUT, "ex_p0.png"), optimize=True)
buf = io.BytesIO()
ref.save(buf, "JPEG", quality=8)
Image.open(buf).convert("RGB").save(os.path.join(OUT, "ex_p1.png"), optimize=True)
print("wrote assets/ex_ref.png, ex_p0.png (blur), ex_p1.png (JPEG q8)")
