"""Writes test/fixtures/decode: small JPEG, PNG and WebP files saved by Pillow, each beside the RGB pixels Pillow
decodes from it (as transformers' load_image does: ImageOps.exif_transpose, then convert("RGB")), stored as
lossless PNG (`<name>.rgb.png`).

Run from the repository root with a Pillow built on libjpeg-turbo (Debian 12: apt-get install python3-pil
python3-numpy; /usr/bin/python3 scripts/make-decode-fixtures.py). Only the test suite's golden data: nothing reads
this script at run time.
"""
import json
import struct

import numpy as np
import PIL
from PIL import Image, ImageOps, PngImagePlugin, features

OUT = "test/fixtures/decode"


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
translucent = even.convert("RGBA")
translucent.putalpha(Image.fromarray((np.mgrid[0:48, 0:64][1] * 4).astype(np.uint8)))
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


def raw_profile(orientation):
    """ImageMagick's PNG text chunk "Raw profile type exif": a header, the length, the EXIF block as hex lines."""
    block = exif(orientation)  # Exif.tobytes() starts with the Exif header already
    h = block.hex()
    return "\nexif\n%8d\n" % len(block) + "\n".join(h[i : i + 72] for i in range(0, len(h), 72)) + "\n"


zprofile = PngImagePlugin.PngInfo()
zprofile.add_text("Raw profile type exif", raw_profile(8), zip=True)
other = {  # PIL's exif_transpose reads orientation from PNG and WebP too
    "png_exif6.png": (odd, dict(exif=exif(6))),
    "png_rawprofile8.png": (even, dict(pnginfo=zprofile)),
    "webp_lossless_exif6.webp": (odd, dict(lossless=True, exif=exif(6))),
    "webp_lossy_exif5.webp": (even, dict(quality=80, exif=exif(5))),
    "webp_lossy_simple.webp": (odd, dict(quality=75)),  # plain VP8 / VP8L files (no extended header)
    "webp_lossless_simple.webp": (even, dict(lossless=True)),
    "gif_palette_trns.gif": (odd.quantize(48), dict(transparency=7)),
    # animations: PIL shows the first frame (libwebp's still decoder refuses an animated file)
    "webp_anim_lossless.webp": (odd, dict(save_all=True, append_images=[odd.rotate(90)], duration=100, lossless=True)),
    "webp_anim_lossy_alpha.webp": (translucent, dict(save_all=True, append_images=[translucent.rotate(90)], duration=100, quality=80)),
}
meta = {"pillow": PIL.__version__, "libjpeg_turbo": features.version("libjpeg_turbo"), "libwebp": features.version("webp"), "cases": {}}


def lzw(indices, min_code=2):
    """GIF LZW data that never grows its code size: a clear code before every 2**min_code - 2 codes."""
    clear, eoi, size = 1 << min_code, (1 << min_code) + 1, min_code + 1
    bits = nbits = 0
    out = bytearray()

    def emit(c):
        nonlocal bits, nbits
        bits |= c << nbits
        nbits += size
        while nbits >= 8:
            out.append(bits & 255)
            bits >>= 8
            nbits -= 8

    emit(clear)
    for i, v in enumerate(indices):
        if i and i % ((1 << min_code) - 2) == 0:
            emit(clear)
        emit(v)
    emit(eoi)
    if nbits:
        out.append(bits & 255)
    return bytes(out)


def offset_gif(path, transparency):
    """An 8x8 screen whose only frame is 4x4 at (2, 2): PIL fills the rest with the transparency index, else 0."""
    g = bytearray(b"GIF89a" + struct.pack("<HH", 8, 8) + bytes([0xF1, 1, 0]) + bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0]))
    if transparency is not None:
        g += bytes([0x21, 0xF9, 4, 1, 0, 0, transparency, 0])
    data = lzw([(i * 3) % 4 for i in range(16)])
    g += b"\x2c" + struct.pack("<HHHH", 2, 2, 4, 4) + b"\x00" + bytes([2, len(data)]) + data + b"\x00\x3b"
    with open(path, "wb") as f:
        f.write(g)


def white(im):
    """transformers 4.x's convert_to_rgb: RGBA composited over white."""
    rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255)), rgba).convert("RGB")


files = {f"{name}.jpg": v for name, v in cases.items()} | other
for file, (im, kw) in files.items():
    im.save(f"{OUT}/{file}", **kw)
    name = file.rsplit(".", 1)[0]
    got = ImageOps.exif_transpose(Image.open(f"{OUT}/{file}")).convert("RGB")
    got.save(f"{OUT}/{name}.rgb.png")
    stored = Image.open(f"{OUT}/{file}").size  # before exif_transpose: what the file's header says
    meta["cases"][name] = {"file": file, "stored": list(stored), "size": list(got.size), "save": {k: v for k, v in kw.items() if k not in ("exif", "pnginfo", "append_images")}}
    if "A" in Image.open(f"{OUT}/{file}").mode:
        white(Image.open(f"{OUT}/{file}")).save(f"{OUT}/{name}.white.png")
        meta["cases"][name]["white"] = True
for name, transparency in [("gif_offset_frame", None), ("gif_offset_frame_trns2", 2)]:
    offset_gif(f"{OUT}/{name}.gif", transparency)
    ImageOps.exif_transpose(Image.open(f"{OUT}/{name}.gif")).convert("RGB").save(f"{OUT}/{name}.rgb.png")
    white(Image.open(f"{OUT}/{name}.gif")).save(f"{OUT}/{name}.white.png")
    meta["cases"][name] = {"file": f"{name}.gif", "stored": [8, 8], "size": [8, 8], "white": True}
with open(f"{OUT}/cases.json", "w") as f:
    json.dump(meta, f, indent=1)
    f.write("\n")


# Resampling at real sizes (the reference cases only hold tiny images): a pattern both sides can compute, resized
# by PIL; the outputs are recorded as SHA-256 digests of their RGB bytes (megabytes each otherwise).
def pattern(w, h):
    """pixel (x, y) = ((x*7 + y*13) ^ (x*y)) & 255, ((x*x + 3*y) >> 2) & 255, (x + 2*y + (x*y >> 5)) & 255"""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    return Image.fromarray(np.stack([((x * 7 + y * 13) ^ (x * y)) & 255, ((x * x + 3 * y) >> 2) & 255, (x + 2 * y + ((x * y) >> 5)) & 255], -1).astype(np.uint8))


import hashlib

src = pattern(1500, 1100)
resized = []
for w, h, resample in [(2048, 1502, 1), (512, 376, 1), (1536, 1127, 3), (300, 220, 3), (2048, 2048, 1), (1024, 751, 1)]:
    out = np.ascontiguousarray(np.asarray(src.resize((w, h), resample=resample)))
    resized.append({"width": w, "height": h, "resample": resample, "sha256": hashlib.sha256(out.tobytes()).hexdigest()})
with open(f"{OUT}/resize.json", "w") as f:
    json.dump({"pillow": PIL.__version__, "source": [1500, 1100], "cases": resized}, f, indent=1)
    f.write("\n")


# Files other decoders stumble on and PIL reads (issue 9): built byte by byte, decoded by PIL into `<name>.rgb.png`,
# listed in cases.json under "hard" with the bytes' origin.
import zlib


def png_chunk(kind, data, crc=None):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) if crc is None else crc)


def png_parts(im, **kw):
    """A PNG saved by PIL, as (signature, chunks before IDAT, zlib image data, chunks after it)."""
    import io
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    b, p, before, idat, after = buf.getvalue(), 8, [], b"", []
    while p < len(b):
        n = struct.unpack(">I", b[p : p + 4])[0]
        kind, data = b[p + 4 : p + 8], b[p + 8 : p + 8 + n]
        if kind == b"IDAT":
            idat += data
        elif kind != b"IEND":
            (after if idat else before).append(png_chunk(kind, data))
        p += 12 + n
    return b[:8], before, idat, after


def png_file(parts, idats=None, tail=b""):
    sig, before, idat, after = parts
    return sig + b"".join(before) + b"".join(png_chunk(b"IDAT", d) for d in (idats or [idat])) + b"".join(after) + png_chunk(b"IEND", b"") + tail


def xmp(orientation):
    return ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
            '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
            f'tiff:Orientation="{orientation}"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def gif_file(indices, w, h, palette, frame=None, screen=None):
    """A one-frame GIF (min code size 2): palette None = no colour table at all; frame = (x, y) of a w x h frame."""
    sw, sh = screen or (w, h)
    g = bytearray(b"GIF89a" + struct.pack("<HH", sw, sh))
    if palette is None:
        g += bytes([0, 0, 0])
    else:
        bits = max(1, (len(palette) // 3 - 1).bit_length())
        g += bytes([0x80 | (bits - 1), 0, 0]) + palette + bytes(3 * (1 << bits) - len(palette))
    data = lzw(indices)
    x, y = frame or (0, 0)
    g += b"\x2c" + struct.pack("<HHHH", x, y, w, h) + b"\x00\x02"
    for i in range(0, len(data), 255):
        g += bytes([len(data[i : i + 255])]) + data[i : i + 255]
    return bytes(g + b"\x00\x3b")


rgb4 = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0])
idx = [(i * 3 + i // 5) % 4 for i in range(30)]
parts = png_parts(odd)
sig, before, idat, after = parts
junk_jpeg = open(f"{OUT}/baseline_420_q90.jpg", "rb").read()
dqt = junk_jpeg.index(b"\xff\xdb")
hard = {
    # GIF: no colour table at all (PIL: mode L, grey = index); indices past a 2-colour table (grey ramp);
    # another GIF appended after the first frame; a first frame reaching past the screen (PIL grows the image)
    "gif_no_palette.gif": gif_file(idx, 6, 5, None),
    "gif_short_palette.gif": gif_file(idx, 6, 5, rgb4[:6]),
    "gif_appended.gif": gif_file(idx, 6, 5, rgb4)[:-1] + gif_file(idx[::-1], 6, 5, rgb4[3:]),
    "gif_frame_past_screen.gif": gif_file(idx, 6, 5, rgb4, frame=(2, 1), screen=(5, 4)),
    # PNG: orientation only in XMP (iTXt XML:com.adobe.xmp); data after the zlib stream inside IDAT; an extra
    # IDAT after the image data; bytes after IEND; an eXIf chunk (orientation 6) whose CRC is wrong
    "png_xmp6.png": png_file((sig, before + [png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp(6).encode())], idat, after)),
    "png_zlib_trailing.png": png_file(parts, idats=[idat + b"trailing bytes"]),
    "png_extra_idat.png": png_file(parts, idats=[idat, b"\x00extra"]),
    "png_after_iend.png": png_file(parts, tail=b"\x00\x00stray bytes after IEND"),
    "png_exif_bad_crc.png": png_file((sig, before, idat, [png_chunk(b"eXIf", exif(6)[6:], crc=0x12345678)])),
    # JPEG: junk between two markers (libjpeg skips to the next marker)
    "jpeg_junk_between_markers.jpg": junk_jpeg[:dqt] + b"\x00junk\x12\x34" + junk_jpeg[dqt:],
}
meta["hard"] = {}
for file, data in hard.items():
    with open(f"{OUT}/{file}", "wb") as f:
        f.write(data)
    name = file.rsplit(".", 1)[0]
    im = Image.open(f"{OUT}/{file}")
    stored = im.size
    got = ImageOps.exif_transpose(im).convert("RGB")
    got.save(f"{OUT}/{name}.rgb.png")
    meta["hard"][name] = {"file": file, "stored": list(stored), "size": list(got.size)}
with open(f"{OUT}/cases.json", "w") as f:
    json.dump(meta, f, indent=1)
    f.write("\n")
