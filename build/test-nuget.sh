#!/usr/bin/env bash
# Tests the HpCnn NuGet package as a user gets it: packs src/HpCnn into artifacts/nuget (HpCnn.VERSION.nupkg with the
# assembly, XML docs and README; HpCnn.VERSION.snupkg with the symbols), checks what is inside, then restores
# samples/dotnet-consumer from that folder feed (its nuget.config) and runs it: it trains a small network on part of
# Fashion-MNIST, saves and reloads it.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
need_dotnet
need_dataset
apt_install unzip

version="$(hpcnn_version)"
feed="$ROOT/artifacts/nuget"
step "pack HpCnn $version into artifacts/nuget"
rm -f "$feed"/HpCnn.*.nupkg "$feed"/HpCnn.*.snupkg
dotnet pack src/HpCnn/HpCnn.csproj -c Release -o "$feed" -nologo -v q || die "dotnet pack src/HpCnn failed"
nupkg="$feed/HpCnn.$version.nupkg"
[ -f "$nupkg" ] && [ -f "$feed/HpCnn.$version.snupkg" ] || die "expected $nupkg and HpCnn.$version.snupkg in $feed"
contents="$(unzip -Z1 "$nupkg")"
for f in lib/net10.0/HpCnn.dll lib/net10.0/HpCnn.xml README.md HpCnn.nuspec; do
    grep -qx "$f" <<<"$contents" || die "$nupkg has no $f"
done
# The listing is read whole first: under pipefail, grep -q leaving a pipe early can kill unzip with SIGPIPE and fail the check.
symbols="$(unzip -Z1 "$feed/HpCnn.$version.snupkg")"
grep -qx lib/net10.0/HpCnn.pdb <<<"$symbols" || die "HpCnn.$version.snupkg has no lib/net10.0/HpCnn.pdb"
echo "$nupkg: $(grep -c . <<<"$contents") files, symbols in HpCnn.$version.snupkg"

step "restore samples/dotnet-consumer from the folder feed, build and run it"
# A packages folder of its own: the global one may hold an older HpCnn of the same version, which NuGet would reuse.
packages="$ROOT/artifacts/dotnet-consumer/packages"
rm -rf "$packages/hpcnn"
consumer=samples/dotnet-consumer/DotnetConsumer.csproj
dotnet build "$consumer" -c Release -nologo -v q --packages "$packages" -o "$ROOT/artifacts/dotnet-consumer/bin" ||
    die "building samples/dotnet-consumer against the HpCnn package failed"
[ -f "$packages/hpcnn/$version/lib/net10.0/HpCnn.dll" ] || die "samples/dotnet-consumer did not restore HpCnn $version from $feed"
dotnet "$ROOT/artifacts/dotnet-consumer/bin/DotnetConsumer.dll" || die "samples/dotnet-consumer failed"
echo
echo "the NuGet package works"
