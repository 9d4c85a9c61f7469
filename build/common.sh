#!/usr/bin/env bash
# Shared helpers of the build scripts: find the repository, install what is missing, fail clearly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
# Debian's interpreter: it is the one that sees python3-numpy / python3-pytest / python3-torch.
PY=/usr/bin/python3

die() { echo "error: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

need_dotnet() {
    command -v dotnet >/dev/null 2>&1 || die "the .NET SDK is not installed (https://dot.net): 'dotnet' is not on PATH"
}

# apt_install PKG...: installs the Debian packages that are not installed yet.
apt_install() {
    local missing=()
    for p in "$@"; do
        local status
        status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
        [[ "$status" == *"install ok installed"* ]] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${missing[*]}"
        sudo="sudo"
    fi
    echo "installing Debian packages: ${missing[*]}"
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
        die "could not install ${missing[*]} with apt-get; install them by hand and run again"
    fi
}

need_dataset() {
    apt_install dataset-fashion-mnist
    [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
        die "dataset-fashion-mnist is installed but /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz is missing"
}

# Builds the CLI once (Release) and sets HPCNN_CLI to the dll.
build_cli() {
    need_dotnet
    HPCNN_CLI="$ROOT/src/HpCnn.Cli/bin/Release/net10.0/HpCnn.Cli.dll"
    dotnet build "$ROOT/src/HpCnn.Cli/HpCnn.Cli.csproj" -c Release -v q -nologo >/dev/null ||
        { dotnet build "$ROOT/src/HpCnn.Cli/HpCnn.Cli.csproj" -c Release -v q -nologo; die "building the hpcnn command failed"; }
    export HPCNN_CLI
}

# The engine's version (src/HpCnn/HpCnn.csproj <Version>): the library's, the wheel's, the NuGet package's.
hpcnn_version() {
    sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$ROOT/src/HpCnn/HpCnn.csproj" | head -n 1
}

# Publishes both library builds into artifacts/native/ unless they are newer than every source they are built from.
ensure_native() {
    local lib="$ROOT/artifacts/native/libhpcnn.so"
    # bin/ and obj/ are skipped: every dotnet build rewrites the generated sources there.
    if [ ! -f "$lib" ] || [ ! -f "$ROOT/artifacts/native/libhpcnn-avx512.so" ] || [ -n "$(cd "$ROOT" && find src/HpCnn src/HpCnn.Onnx native-exports/src \
            native-exports/HpCnn.Native.csproj Directory.Build.props \( -name bin -o -name obj \) -prune -o \
            \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' \) -newer "$lib" -print -quit)" ]; then
        "$ROOT/build/publish-native.sh"
    else
        echo "libhpcnn.so is newer than its sources: not publishing again"
    fi
}

# Open MPI for distributed training (mpirun and libmpi.so.40, which the engine loads when a fit is launched by mpirun).
need_mpi() {
    apt_install openmpi-bin libopenmpi-dev
}

# mpirun_local ARGS...: mpirun with every rank on this machine, as the build scripts run it.
#   --allow-run-as-root --oversubscribe  containers run as root; tests start more ranks than there are cores
#   --bind-to none                       a rank pinned to one core would share it with another job's threads
#   --mca btl self,vader                 shared memory only: no probing of network interfaces at startup
#   -x TERM=dumb                         Open MPI gives each rank a pseudo-terminal even when the output goes to a
#                                        file; .NET then writes terminal control codes into the log
# (The array is for commands that take a program, e.g. timeout 60 "${MPIRUN_LOCAL[@]}" -np 2 ...)
MPIRUN_LOCAL=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader -x TERM=dumb)
mpirun_local() { "${MPIRUN_LOCAL[@]}" "$@"; }

# same_weights A.hpcnn B.hpcnn: every chunk of two model files is equal except 'meta' (the history, with its run times).
same_weights() {
    "$PY" - "$1" "$2" <<'PYEOF'
import struct, sys
def chunks(path):
    data = open(path, "rb").read()
    assert data[:8] == b"HPCNNMDL", f"{path}: not an HpCnn model file"
    pos, out = 12, {}
    while pos < len(data) - 4:
        tag, n = data[pos:pos + 4].decode(), struct.unpack_from("<I", data, pos + 4)[0]
        out[tag] = data[pos + 8:pos + 8 + n]
        pos += 8 + n
        if tag == "END ": break
    return out
a, b = chunks(sys.argv[1]), chunks(sys.argv[2])
a.pop("meta", None); b.pop("meta", None)
assert "PARM" in a, f"{sys.argv[1]}: no PARM chunk"
differ = sorted(t for t in set(a) | set(b) if a.get(t) != b.get(t))
if differ:
    sys.exit(f"{sys.argv[1]} and {sys.argv[2]} differ in chunk(s) {', '.join(differ)}")
print(f"{sys.argv[1]} = {sys.argv[2]}: chunks {' '.join(sorted(a))} equal byte for byte ({len(a['PARM']):,} bytes of weights)")
PYEOF
}
