"""Writes test/fixtures/jpeg: small JPEGs saved by Pillow, each beside the RGB pixels Pillow decodes from it (as
transformers' load_image does: ImageOps.exif_transpose, then convert("RGB")), stored as lossless PNG.

Run from the repository root with a Pillow built on libjpeg-turbo (Debian 12: apt-get install python3-pil
python3-numpy; /usr/bin/python3 scripts/make-jpeg-fixtures.py). Only the test suite's golden data: nothing reads
this script at run time.
"""
import json

import numpy as np
import PIL
from PIL import Image, ImageOps, features

OUT = "test/fixtures/jpeg"


def photo(w, h, seed):
    """Gradients, hard edges and noise: chroma detail that tells upsampling methods apart."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 / w, y * 255 / h, ((x + 2 * y) % 17) * 15], -1).astype(np.float64)
    a[h // 4 : h // 2, w // 3 : 2 * w // 3] = [210, 25, 60]
    a[(x - w * 0.7) ** 2 + (y - h * 0.6) ** 2 < (h / 5) ** 2] = [20, 180, 240]
    a += rng.normal(0, 12, a.shape)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def exif(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


odd, even = photo(61, 43, 1), photo(64, 48, 2)
cases = {
    "baseline_420_q90": (odd, dict(quality=90)),
    "baseline_444_q95": (even, dict(quality=95, subsampling=0)),
    "baseline_422_q75": (odd, dict(quality=75, subsampling=1)),
    "progressive_420_q85": (odd, dict(quality=85, progressive=True, optimize=True)),
    "gray_q90": (odd.convert("L"), dict(quality=90)),
    "exif6_420_q85": (odd, dict(quality=85, exif=exif(6))),
    "exif3_420_q85": (even, dict(quality=85, exif=exif(3))),
    "cmyk_q90": (odd.convert("CMYK"), dict(quality=90)),
}
meta = {"pillow": PIL.__version__, "libjpeg_turbo": features.version("libjpeg_turbo"), "cases": {}}
for name, (im, kw) in cases.items():
    im.save(f"{OUT}/{name}.jpg", **kw)
    got = ImageOps.exif_transpose(Image.open(f"{OUT}/{name}.jpg")).convert("RGB")
    got.save(f"{OUT}/{name}.rgb.png")
    meta["cases"][name] = {"size": list(got.size), "save": {k: v for k, v in kw.items() if k != "exif"}}
with open(f"{OUT}/cases.json", "w") as f:
    json.dump(meta, f, indent=1)
    f.write("\n")
