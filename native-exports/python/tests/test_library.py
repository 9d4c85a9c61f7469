"""The published library: kernel path, version, ABI, threads, and how the package finds (or fails to find) it."""

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

import hpcnn
from hpcnn import _native

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(hpcnn.__file__)))
# The header of the library these tests belong to (the package itself may be installed elsewhere, from the wheel).
HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include", "hpcnn.h")


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def test_kernel_path_is_avx2_fma_on_an_avx2_fma_cpu():
    # The NativeAOT build must have the AVX2 path compiled in (IlcInstructionSet x86-64-v3).
    flags = cpu_flags()
    if not {"avx2", "fma"} <= flags:
        pytest.skip("this CPU has no AVX2+FMA")
    assert hpcnn.kernel_path() == "avx2-fma"


def test_kernel_path_is_a_known_name():
    assert hpcnn.kernel_path() in ("avx2-fma", "scalar")


def test_gemm_kernel_matches_the_build_loaded():
    # Two builds: libhpcnn.so (x86-64-v3) runs the AVX2 tiles, libhpcnn-avx512.so (x86-64-v3 + AVX-512) the AVX-512 ones.
    # NativeAOT fixes the instruction sets at compile time, so the file decides.
    flags = cpu_flags()
    if not {"avx2", "fma"} <= flags:
        pytest.skip("this CPU has no AVX2+FMA")
    avx512_build = os.path.basename(hpcnn.library_path) == "libhpcnn-avx512.so"
    assert hpcnn.gemm_kernel() == ("avx512 12x16" if avx512_build else "avx2 6x16")


def test_the_avx512_build_is_loaded_where_the_cpu_runs_it():
    # Without HPCNN_LIBRARY the package prefers the repository's AVX-512 build on a CPU with AVX-512 F/BW/CD/DQ/VL.
    if os.environ.get("HPCNN_LIBRARY"):
        pytest.skip("HPCNN_LIBRARY chooses the library")
    built = os.path.join(os.path.dirname(hpcnn.library_path), "libhpcnn-avx512.so")
    if not (_native.cpu_has_avx512() and os.path.exists(built)):
        pytest.skip("no AVX-512 CPU or no AVX-512 build next to the library")
    assert hpcnn.library_path == built
    assert hpcnn.gemm_kernel() == "avx512 12x16"


def test_an_installed_wheel_loads_the_library_it_carries():
    # The wheel puts both builds into hpcnn/lib/; the package loads one of those, never one from elsewhere.
    carried = os.path.join(os.path.dirname(os.path.abspath(hpcnn.__file__)), "lib")
    if not os.path.isdir(carried):
        pytest.skip("hpcnn runs from a source folder, not from the wheel")
    assert sorted(os.listdir(carried)) == ["libhpcnn-avx512.so", "libhpcnn.so"]
    assert importlib.metadata.version("hpcnn") == hpcnn.version(), "the wheel's version is the library's"
    if os.environ.get("HPCNN_LIBRARY"):
        pytest.skip("HPCNN_LIBRARY chooses the library")
    expected = "libhpcnn-avx512.so" if _native.cpu_has_avx512() else "libhpcnn.so"
    assert hpcnn.library_path == os.path.join(carried, expected)


def test_version_and_abi():
    assert re.fullmatch(r"\d+\.\d+\.\d+([-+].*)?", hpcnn.version())
    assert hpcnn.__version__ == hpcnn.version()
    assert hpcnn.abi_version() >= hpcnn.REQUIRED_ABI_VERSION
    assert os.path.exists(hpcnn.library_path)


def test_threads_round_trip_and_range():
    before = hpcnn.get_threads()
    try:
        hpcnn.set_threads(1)
        assert hpcnn.get_threads() == 1
        hpcnn.set_threads(3)
        assert hpcnn.get_threads() == 3
        with pytest.raises(hpcnn.InvalidArgumentError, match="256"):
            hpcnn.set_threads(0)
        assert hpcnn.get_threads() == 3
    finally:
        hpcnn.set_threads(before)


def run_import(env_extra):
    env = dict(os.environ, PYTHONPATH=PACKAGE_DIR)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", "import hpcnn; print(hpcnn.library_path)"], env=env,
                          capture_output=True, text=True, timeout=60)


def test_hpcnn_library_variable_is_used():
    r = run_import({"HPCNN_LIBRARY": hpcnn.library_path})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == hpcnn.library_path


def test_missing_library_gives_a_clear_import_error(tmp_path):
    r = run_import({"HPCNN_LIBRARY": str(tmp_path / "nowhere" / "libhpcnn.so")})
    assert r.returncode != 0
    assert "ImportError" in r.stderr
    assert "HPCNN_LIBRARY" in r.stderr and "publish-native.sh" in r.stderr


def test_a_file_that_is_not_a_library_gives_an_import_error(tmp_path):
    fake = tmp_path / "libhpcnn.so"
    fake.write_bytes(b"not an ELF file")
    r = run_import({"HPCNN_LIBRARY": str(fake)})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "publish-native.sh" in r.stderr


def test_every_exception_class_matches_its_status_and_builtin():
    e = hpcnn.errors
    assert issubclass(e.InvalidArgumentError, ValueError) and e.InvalidArgumentError.status == 1
    assert issubclass(e.InvalidStateError, RuntimeError) and e.InvalidStateError.status == 2
    assert issubclass(e.HpcnnIOError, OSError) and e.HpcnnIOError.status == 3
    assert issubclass(e.InvalidFileError, ValueError) and e.InvalidFileError.status == 4
    assert issubclass(e.HpcnnMemoryError, MemoryError) and e.HpcnnMemoryError.status == 5
    assert issubclass(e.NumericError, ArithmeticError) and e.NumericError.status == 6
    assert issubclass(e.InternalError, RuntimeError) and e.InternalError.status == 99
    for status in (1, 2, 3, 4, 5, 6, 99):
        err = e.error_for_status(status, "msg")
        assert isinstance(err, e.HpcnnError) and err.status == status and str(err) == "msg"


def test_every_function_of_the_header_is_declared():
    # A function of hpcnn.h without a ctypes declaration would be called with guessed (int) types.
    from hpcnn import _native
    with open(HEADER) as f:
        text = f.read()
    declared = set(re.findall(r"^[a-z_][a-z0-9_ *]*?\b(hpcnn_[a-z0-9_]+)\(", text, re.MULTILINE))
    assert len(declared) > 60
    assert declared == set(_native._SIGNATURES)
    for name in declared:
        fn = getattr(_native.lib, name)
        assert fn.argtypes is not None, name
