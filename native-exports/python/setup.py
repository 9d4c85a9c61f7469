"""Build steps pyproject.toml cannot say: copy both libhpcnn builds into the package, and tag the wheel for the platform.

The package has no compiled Python extension (it calls the library through ctypes), so the wheel is tagged
py3-none-<platform>: any Python 3 on linux x86-64.
"""

import os
import shutil

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

try:  # setuptools >= 70.1 has its own; before that it came with the wheel package (Debian 12: wheel 0.38)
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:
    from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARIES = ("libhpcnn.so", "libhpcnn-avx512.so")


def native_dir():
    default = os.path.join(HERE, "..", "..", "artifacts", "native")
    return os.path.abspath(os.environ.get("HPCNN_NATIVE_DIR", default))


class BuildWithLibraries(build_py):
    """build_py, then the two library builds into hpcnn/lib/ of the build tree (never into the source folder)."""

    def run(self):
        super().run()
        source = native_dir()
        missing = [name for name in LIBRARIES if not os.path.isfile(os.path.join(source, name))]
        if missing:
            raise SystemExit(f"hpcnn wheel: {', '.join(missing)} not found in {source}: run ./build/publish-native.sh "
                             "first (or set HPCNN_NATIVE_DIR to the folder holding both builds)")
        target = os.path.join(self.build_lib, "hpcnn", "lib")
        os.makedirs(target, exist_ok=True)
        for name in LIBRARIES:
            shutil.copy2(os.path.join(source, name), os.path.join(target, name))


class PlatformDistribution(Distribution):
    """Says it has compiled parts (the libraries), so the files go to the wheel's root as platform-specific ones."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """Tagged for the platform, but independent of the Python version and ABI (ctypes, no extension module)."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(distclass=PlatformDistribution, cmdclass={"build_py": BuildWithLibraries, "bdist_wheel": PlatformWheel})
