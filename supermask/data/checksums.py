"""What the real MNIST and Fashion-MNIST files are: the SHA-256 and size of their content.

Every load checks the SHA-256 of the *decompressed* content of the four IDX files against
`SHA256`, whatever the source (``data_dir``, ``$SUPERMASK_DATA``, the cache or a download),
reading no more than the real file's size (`IDX_SIZES`), so a gzip bomb is refused before
it is hashed. (CIFAR-10's archive is checked by ``keras.utils.get_file`` against
``supermask.data.sources.CIFAR_ARCHIVE_SHA256`` when downloaded.)
"""

from __future__ import annotations

import hashlib

from supermask.data.formats import _FIX, IDX_FILES, _read_bytes
from supermask.errors import DataError

# SHA-256 of the DECOMPRESSED files. Computed from copies whose decompressed MD5s equal
# the canonical ones (MNIST: 6bbc9ace.., a25bea73.., 2646ac64.., 27ae3e4e..;
# Fashion-MNIST: f4a8712d.., 9018921c.., 8181f547.., 15d48437..).
SHA256 = {
    "mnist": dict(zip(IDX_FILES, (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"))),
    "fashion_mnist": dict(zip(IDX_FILES, (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"))),
}
# Size in bytes of each DECOMPRESSED file, the same for MNIST and Fashion-MNIST (header +
# 60000 or 10000 images of 28x28 / labels): reading stops, with a DataError, past it.
IDX_SIZES = dict(zip(IDX_FILES, (47040016, 60008, 7840016, 10008)))


def _verified_bytes(path, name: str, base: str) -> bytearray:
    """Decompressed content of ``path``, at most the real file's size, checked by SHA-256."""
    data = _read_bytes(path, IDX_SIZES[base], f"the size of the real {name} {base}")
    actual, expected = hashlib.sha256(data).hexdigest(), SHA256[name][base]
    if actual != expected:
        raise DataError(f"{path}: checksum mismatch for {name} {base} (SHA-256 of the "
                        f"decompressed content: expected {expected}, got {actual}); {_FIX}.")
    return data
