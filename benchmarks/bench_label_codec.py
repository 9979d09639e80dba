"""Which lossless codec for label images (segmentations)? Size and decode time of one chunk of real labels with
lossless JPEG XL (effort 2 and 1) and bytes + zstd 5, through imagecodecs on one thread (docs/BENCHMARKS.md,
"Label image codec").

    python benchmarks/bench_label_codec.py
"""
import numpy as np, time, imagecodecs
from skimage import data, measure
coins = measure.label(data.coins() > 110).astype(np.uint16)
tile = np.tile(coins, (2, 2))[:512, :512].copy()
blobs = measure.label(data.binary_blobs(length=128, n_dim=3, rng=1)).astype(np.uint16)[:64, :64, :64].copy()
cells = measure.label(data.binary_blobs(length=512, blob_size_fraction=0.02, rng=3)).astype(np.uint16)[:512, :512].copy()
for name, a in (("coins 512² u16", tile), ("small cells 512² u16", cells), ("3D blobs 64³ u16", blobs)):
    flat = a.reshape(-1, a.shape[-1])
    j = imagecodecs.jpegxl_encode(flat, lossless=True, effort=2, photometric="GRAY")
    j1 = imagecodecs.jpegxl_encode(flat, lossless=True, effort=1, photometric="GRAY")
    z = imagecodecs.zstd_encode(a.tobytes(), level=5)
    def t(f, n=20):
        t0 = time.perf_counter()
        for _ in range(n): f()
        return (time.perf_counter() - t0) / n * 1e3
    print(f"{name}: raw {a.nbytes/1e3:.0f} kB | jxl e2 {len(j)/1e3:.1f} kB dec {t(lambda: imagecodecs.jpegxl_decode(j)):.2f} ms | jxl e1 {len(j1)/1e3:.1f} kB dec {t(lambda: imagecodecs.jpegxl_decode(j1)):.2f} ms | zstd5 {len(z)/1e3:.1f} kB dec {t(lambda: imagecodecs.zstd_decode(z)):.2f} ms")
