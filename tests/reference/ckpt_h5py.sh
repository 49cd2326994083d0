#!/usr/bin/env bash
# loft's checkpoints are ordinary HDF5 files the Python ecosystem reads: h5py opens one written by loft and
# finds the values, dtypes, shapes, the BF16 marker and the attributes. The zstd filter (id 32015) comes
# from loft's plugin (libloft_h5zstd.so, HDF5_PLUGIN_PATH = the build dir: Debian 12 packages no zstd
# filter, and its python3-hdf5plugin has none) and, where pip's hdf5plugin is installed, from that too.
# Args: $1 loft binary, $2 source dir, $3 scratch dir.
set -euo pipefail
tmp=$3
rm -rf "$tmp"
mkdir -p "$tmp"
"$(dirname "$1")/ckpt_driver" "$tmp/c.h5"
check() { # $1: how the filter is found
/usr/bin/python3 - "$tmp/c.h5" "$1" <<'PY'
import sys
if sys.argv[2] == "hdf5plugin":
    import hdf5plugin  # noqa: F401
import h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
a = f["lora/a"]
assert a.dtype == np.float32 and a.shape == (3, 5), (a.dtype, a.shape)
assert np.array_equal(a[()], np.arange(15, dtype=np.float32).reshape(3, 5) * 0.5)
assert 32015 in a._filters or "32015" in str(a._filters), a._filters
b = f["lora/b"]
assert b.dtype == np.uint16 and b.attrs["loft_dtype"] in (b"bf16", "bf16")
vals = (b[()].astype(np.uint32) << 16).view(np.float32)
assert list(vals) == [1.0, -2.0, 0.5, 3.25], vals
assert list(f["state/i"][()]) == [7, -9]
assert f.attrs["step"] == 42 and abs(f.attrs["lr"] - 0.001) < 1e-15
t = f.attrs["text"]
t = t.decode() if isinstance(t, bytes) else t
assert t == "h\u00e9llo", t
assert len(f.attrs["loft_checksum"]) == 64
print("ok: h5py %s read loft's checkpoint through %s (zstd filter 32015, bf16 marker, attributes)"
      % (h5py.__version__, sys.argv[2]))
PY
}
HDF5_PLUGIN_PATH=$(dirname "$1") check "loft's plugin (HDF5_PLUGIN_PATH)"
if /usr/bin/python3 -c 'import hdf5plugin, sys; sys.exit(0 if "zstd" in getattr(hdf5plugin, "get_filters", lambda: [])() or hasattr(hdf5plugin, "Zstd") and __import__("os").path.exists(hdf5plugin.PLUGINS_PATH + "/libh5zstd.so") else 1)' 2>/dev/null; then
  check hdf5plugin
else
  echo "note: this hdf5plugin carries no zstd filter (Debian's uses the system plugins): only loft's plugin checked"
fi
