"""Builds the hashkv package's one compiled part: the SQLite extension.

The extension is not a Python module (it has no PyInit_ function): it is
the project's own CMake target ``hashkv_ext`` (``build/hashkv.so``), built
from the C sources of ``store/`` and ``ext/`` next to this directory and
copied into the package as ``hashkv/hashkv.so``. Driving CMake keeps one
source list and one set of compiler flags for every way hashkv is built.

Everything a build writes (setuptools' build directory, the CMake tree, the
egg-info) goes to a fresh directory under ``$TMPDIR``, removed when the build
ends, so that ``pip install ./python`` leaves the source tree as it found it.

The package version is ``HKV_VERSION_STRING`` from ``store/hashkv.h``.
"""
import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADER = ROOT / "store" / "hashkv.h"
EXT_FILE = "hashkv.so"  # SQLite derives the entry point sqlite3_hashkv_init from "hashkv"


def source_version() -> str:
    """HKV_VERSION_STRING from store/hashkv.h (the one place it is written)."""
    if not HEADER.is_file():
        sys.exit(
            f"hashkv: {HEADER} not found. The package builds from a hashkv "
            "source tree: run pip install on the python/ directory of a "
            "checkout, in place (no copy of python/ alone)."
        )
    m = re.search(r'^#define\s+HKV_VERSION_STRING\s+"([^"]+)"',
                  HEADER.read_text(encoding="utf-8"), re.M)
    if not m:
        sys.exit(f"hashkv: no HKV_VERSION_STRING in {HEADER}")
    return m.group(1)


class CMakeExtension(Extension):
    """A file built by a CMake target, not compiled by setuptools."""

    def __init__(self, name: str, target: str) -> None:
        super().__init__(name, sources=[])
        self.target = target


class BuildCMake(build_ext):
    """Configures the project (no tests, no benchmarks) and builds the
    target into the build_temp directory, then copies the result."""

    def get_ext_filename(self, fullname: str) -> str:
        # hashkv/hashkv.so, not hashkv/hashkv.cpython-311-...so: SQLite names
        # the entry point after the file name, and this is no Python module.
        *package, _ = fullname.split(".")
        return os.path.join(*package, EXT_FILE)

    def build_extension(self, ext: Extension) -> None:
        if not isinstance(ext, CMakeExtension):
            super().build_extension(ext)
            return
        cmake = shutil.which("cmake")
        if cmake is None:
            sys.exit("hashkv: building the extension needs cmake (Debian: "
                     "apt-get install cmake libsqlite3-dev libxxhash-dev)")
        tree = Path(self.build_temp).resolve() / "cmake"
        tree.mkdir(parents=True, exist_ok=True)
        configure = [
            cmake, "-S", str(ROOT), "-B", str(tree),
            "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
            "-DHKV_BUILD_TESTS=OFF", "-DHKV_BUILD_BENCH=OFF",
        ]
        build = [cmake, "--build", str(tree), "--target", ext.target]
        if "CMAKE_BUILD_PARALLEL_LEVEL" not in os.environ:
            build += ["--parallel", str(os.cpu_count() or 1)]
        for cmd in (configure, build):
            self.announce(" ".join(cmd), level=2)
            subprocess.run(cmd, check=True)
        built = tree / EXT_FILE
        dest = Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, dest)
        dest.chmod(0o755)


def scratch_dir() -> str:
    """A directory for this build's outputs, removed when the build ends."""
    path = tempfile.mkdtemp(prefix="hashkv-pybuild-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


SCRATCH = scratch_dir()

setup(
    version=source_version(),
    ext_modules=[CMakeExtension("hashkv.hashkv", target="hashkv_ext")],
    cmdclass={"build_ext": BuildCMake},
    options={
        "build": {"build_base": os.path.join(SCRATCH, "build")},
        "egg_info": {"egg_base": SCRATCH},
    },
)
