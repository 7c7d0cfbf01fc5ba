"""Built layer sizes: unzipped (sum of file sizes) and zipped (Python's zipfile, deflate), per layer.

The zip is what `sam deploy` uploads: the layer folder's contents (python/...) deflated at zlib's
default level; Lambda's limits count the unzipped size (250 MB for a function and its layers).

    python bench/sizes.py
"""

from __future__ import annotations

import io
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

from common import BUILD_DIR, check_build

MB = 1024 * 1024


def layer_size(folder: Path) -> dict[str, Any]:
    unzipped = files = pycs = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            files += 1
            pycs += path.suffix == ".pyc"
            unzipped += path.stat().st_size
            archive.write(path, path.relative_to(folder).as_posix())
    return {
        "unzipped_mb": unzipped / MB,
        "zipped_mb": len(buffer.getvalue()) / MB,
        "files": files,
        "pyc_files": pycs,
    }


def measure() -> dict[str, Any]:
    built = check_build()
    results = {}
    for name, resource in built.resources.items():
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            folder = BUILD_DIR / resource["Properties"]["ContentUri"]
            if folder.is_dir():
                results[name] = layer_size(folder)
    return results


def main() -> int:
    for name, row in measure().items():
        print(
            f"{name:14s} {row['unzipped_mb']:6.1f} MB unzipped  {row['zipped_mb']:6.1f} MB zipped  "
            f"{row['files']} files, {row['pyc_files']} .pyc"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
